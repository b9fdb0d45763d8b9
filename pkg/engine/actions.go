package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// effect is what a step left behind and the run must undo: a network
// fault, a faultfs rule, a paused container.
type effect struct {
	action  string // of the step that made it: actions[action].undo removes it
	step    string
	id      string // fault ID, faultfs rule ID, or container ("" is the target)
	netns   string
	kind    string // as journalled: drop, reject, unreachable, faultfs, pause
	desc    string
	rules   []string // as applied
	counted bool     // a rule fault whose packets are counted
	// Set by the loop only.
	undone         bool
	packets, bytes uint64
	hitAt          time.Time
}

func (e *effect) network() bool { return isNetwork(e.action) }

func isNetwork(action string) bool { return scenario.IsNetworkFault(action) }

// action is what a step of one kind does and how it is undone. apply and
// undo call the backends off the loop and touch no run state; applied and
// undone record on the loop what they did. Steps that remove effects
// (heal, faultfs-clear, unpause) undo them through the same undo as the
// end of For and the rollback.
type action struct {
	apply   func(ctx context.Context, r *run, st *scenario.Step) (*effect, error)
	applied func(r *run, st *scenario.Step, e *effect)
	undo    func(ctx context.Context, r *run, e effect) undoOutcome
	undone  func(r *run, e *effect, o undoOutcome)
	// removes selects the live effects a step of this kind undoes; when
	// there are none, apply (if any) runs instead.
	removes func(st *scenario.Step, e *effect) bool
	// undoing and gone name an undo in the rollback's warnings and list.
	undoing, gone string
}

var (
	netFaultAction = action{apply: applyNetFault, applied: netFaultApplied, undo: healNetFault, undone: netFaultHealed, undoing: "healing", gone: "fault"}
	controlAction  = action{apply: control}
)

// actions has one entry per scenario action.
var actions = map[string]action{
	scenario.ActionDrop:        netFaultAction,
	scenario.ActionReject:      netFaultAction,
	scenario.ActionUnreachable: netFaultAction,
	scenario.ActionDelay:       netFaultAction,
	scenario.ActionLimit:       netFaultAction,
	scenario.ActionHeal: {removes: func(st *scenario.Step, e *effect) bool {
		return e.network() && (st.Ref == "all" || e.step == st.Ref)
	}},
	scenario.ActionFaultfsSet: {apply: setFaultfs, applied: faultfsSet, undo: clearFaultfs, undone: faultfsCleared, undoing: "clearing", gone: "faultfs"},
	scenario.ActionFaultfsClear: {removes: func(st *scenario.Step, e *effect) bool {
		return e.action == scenario.ActionFaultfsSet && (st.Ref == "all" || e.step == st.Ref)
	}},
	scenario.ActionPause: {apply: pause, undo: unpause, undoing: "unpausing", gone: "unpaused"},
	scenario.ActionUnpause: {apply: control, removes: func(st *scenario.Step, e *effect) bool {
		return e.action == scenario.ActionPause && e.id == st.Container
	}},
	scenario.ActionStop:           controlAction,
	scenario.ActionKill:           controlAction,
	scenario.ActionRestart:        controlAction,
	scenario.ActionRestartTarget:  {apply: restartTarget, applied: targetRestarted},
	scenario.ActionWait:           {}, // For does the waiting
	scenario.ActionServerRestart:  serverFaultAction,
	scenario.ActionServerUnexport: serverFaultAction,
	scenario.ActionServerExpire:   serverFaultAction,
	scenario.ActionServerFill:     serverFaultAction,
	scenario.ActionServerEIO:      serverFaultAction,
}

// stepWork is one step's action as the loop hands it to a worker: the
// effects it removes, chosen on the loop, and what the worker reports.
type stepWork struct {
	st     *scenario.Step
	jobs   []undoJob
	effect *effect
	err    error
}

// prepare chooses, on the loop, what step st will do.
func (r *run) prepare(st *scenario.Step) *stepWork {
	w := &stepWork{st: st}
	if a := actions[st.Action]; a.removes != nil {
		w.jobs = r.undoJobs(func(e *effect) bool { return a.removes(st, e) })
	}
	return w
}

// do runs the step's backend calls; off the loop, or inline in the rollback.
func (w *stepWork) do(ctx context.Context, r *run) {
	a, ok := actions[w.st.Action]
	switch {
	case !ok:
		w.err = fmt.Errorf("unknown action %q", w.st.Action)
	case len(w.jobs) > 0:
		r.undo(ctx, w.jobs)
	case a.apply != nil:
		w.effect, w.err = a.apply(ctx, r, w.st)
	}
}

// record takes, on the loop, what a step's worker did.
func (r *run) record(w *stepWork) error {
	if len(w.jobs) > 0 {
		return r.recordUndo(w.jobs)
	}
	if w.err != nil {
		return w.err
	}
	if w.effect != nil {
		r.data.effects = append(r.data.effects, w.effect)
	}
	if a := actions[w.st.Action]; a.applied != nil {
		a.applied(r, w.st, w.effect)
	}
	return nil
}

func applyNetFault(ctx context.Context, r *run, st *scenario.Step) (*effect, error) {
	spec, err := r.faultSpec(ctx, st)
	if err != nil {
		return nil, err
	}
	id, rules, err := r.applyFault(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("applying %s to %s: %w", st.Action, spec.Dst, err)
	}
	return &effect{action: st.Action, step: st.ID, id: id, netns: spec.Netns, kind: string(spec.Kind),
		desc: specText(spec), rules: rules, counted: spec.Counted()}, nil
}

func netFaultApplied(r *run, st *scenario.Step, e *effect) {
	r.write(journal.Record{Type: journal.TypeFaultApplied, Fault: &journal.Fault{ID: e.id, Kind: e.kind, Description: e.desc, Rules: e.rules}})
	r.note("fault", "%s applied: %s (id %s)", st.ID, e.desc, e.id)
}

// healNetFault reads a rule's last counters and, when it matched nothing,
// asks Diagnose why, before it heals the fault.
func healNetFault(ctx context.Context, r *run, e effect) undoOutcome {
	var o undoOutcome
	if e.counted {
		if list, err := r.listFaults(ctx, e.netns); err == nil {
			o.listed, o.counters, o.at = true, list, r.clk.Now()
		}
		packets := e.packets
		for _, f := range o.counters {
			if f.ID == e.id && f.Packets > packets {
				packets = f.Packets
			}
		}
		if packets == 0 {
			o.findings, o.diagErr = r.diagnoseFault(ctx, e.netns, e.id)
		}
	}
	if err := r.healFault(ctx, e.netns, e.id); err != nil {
		o.err = fmt.Errorf("healing %s: %w", e.id, err)
	}
	return o
}

func netFaultHealed(r *run, e *effect, o undoOutcome) {
	var findings []string
	for _, x := range o.findings {
		findings = append(findings, x.Cause+": "+x.Detail)
	}
	r.write(journal.Record{Type: journal.TypeFaultHealed, Fault: &journal.Fault{ID: e.id, Kind: e.kind, Description: fmt.Sprintf("step %s: %d packets, %d bytes", e.step, e.packets, e.bytes), Findings: findings}})
	if e.counted {
		r.note("fault", "%s healed (id %s): %d packets matched", e.step, e.id, e.packets)
	} else {
		r.note("fault", "%s healed (id %s)", e.step, e.id)
	}
}

func (r *run) faultfsID(step string) string { return r.o.RunID + "-" + step }

func setFaultfs(ctx context.Context, r *run, st *scenario.Step) (*effect, error) {
	id := r.faultfsID(st.ID)
	if err := r.b.Storage.SetFault(ctx, id, *st.Faultfs); err != nil {
		return nil, fmt.Errorf("setting faultfs rule: %w", err)
	}
	return &effect{action: st.Action, step: st.ID, id: id, kind: "faultfs", desc: faultfsText(st.Faultfs)}, nil
}

func faultfsSet(r *run, _ *scenario.Step, e *effect) {
	r.write(journal.Record{Type: journal.TypeFaultApplied, Fault: &journal.Fault{ID: e.id, Kind: e.kind, Description: e.desc}})
	r.note("fault", "faultfs rule %s set: %s", e.id, e.desc)
}

func clearFaultfs(ctx context.Context, r *run, e effect) undoOutcome {
	if err := r.b.Storage.ClearFault(ctx, e.id); err != nil && !errors.Is(err, netfault.ErrNotFound) {
		return undoOutcome{err: fmt.Errorf("clearing faultfs rule %s: %w", e.id, err)}
	}
	return undoOutcome{}
}

func faultfsCleared(r *run, e *effect, _ undoOutcome) {
	r.write(journal.Record{Type: journal.TypeFaultHealed, Fault: &journal.Fault{ID: e.id, Kind: e.kind, Description: "step " + e.step}})
	r.note("fault", "faultfs rule %s cleared", e.id)
}

func pause(ctx context.Context, r *run, st *scenario.Step) (*effect, error) {
	if err := r.b.Target.Control(ctx, scenario.ActionPause, st.Container); err != nil {
		return nil, err
	}
	return &effect{action: st.Action, step: st.ID, id: st.Container, kind: "pause"}, nil
}

func unpause(ctx context.Context, r *run, e effect) undoOutcome {
	return undoOutcome{err: r.b.Target.Control(ctx, scenario.ActionUnpause, e.id)}
}

func control(ctx context.Context, r *run, st *scenario.Step) (*effect, error) {
	return nil, r.b.Target.Control(ctx, st.Action, st.Container)
}

func restartTarget(ctx context.Context, r *run, st *scenario.Step) (*effect, error) {
	var between func(context.Context) error
	if st.DropCache {
		between = r.b.Storage.DropCache
	}
	if err := r.b.Target.Restart(ctx, between); err != nil {
		return nil, fmt.Errorf("restarting target: %w", err)
	}
	return nil, nil
}

func targetRestarted(r *run, st *scenario.Step, _ *effect) {
	r.note("step", "%s: target restarted%s", st.ID, map[bool]string{true: " with a cold page cache"}[st.DropCache])
}
