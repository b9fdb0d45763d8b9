package engine

import (
	"context"
	"fmt"

	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/nfsserver"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// ServerFaulter is implemented by a Storage whose NFS server is nfslab's
// own (the netns knfsd). The server-* actions switch its faults on and
// off; fault is an nfsserver.ServerFault name (stop, unexport,
// expire-clients, fill, eio) and target the step's eio: (zero for the
// others and for switching a fault off).
type ServerFaulter interface {
	ServerFault(ctx context.Context, fault string, on bool, target nfsserver.FaultTarget) error
}

// serverFaults maps each server action to the server fault it switches.
var serverFaults = map[string]string{
	scenario.ActionServerRestart:  "stop",
	scenario.ActionServerUnexport: "unexport",
	scenario.ActionServerExpire:   "expire-clients",
	scenario.ActionServerFill:     "fill",
	scenario.ActionServerEIO:      "eio",
}

var serverFaultAction = action{apply: applyServerFault, applied: serverFaultApplied, undo: undoServerFault, undone: serverFaultUndone, undoing: "restoring the server after", gone: "server fault"}

func (r *run) serverFaulter() (ServerFaulter, error) {
	sf, ok := r.b.Storage.(ServerFaulter)
	if !ok {
		return nil, fmt.Errorf("server faults need nfslab's own NFS server: %w", ErrUnsupported)
	}
	return sf, nil
}

// applyServerFault switches the step's fault on. A fault with an undo
// (server-restart, server-unexport) lasts the step's For; server-restart
// without For starts knfsd again at once. server-expire-clients has
// nothing to undo: the client reclaims by itself.
func applyServerFault(ctx context.Context, r *run, st *scenario.Step) (*effect, error) {
	sf, err := r.serverFaulter()
	if err != nil {
		return nil, err
	}
	fault := serverFaults[st.Action]
	var target nfsserver.FaultTarget
	if st.EIO != nil {
		target = *st.EIO
	}
	if err := sf.ServerFault(ctx, fault, true, target); err != nil {
		return nil, fmt.Errorf("%s: %w", st.Action, err)
	}
	switch {
	case st.Action == scenario.ActionServerExpire:
		return nil, nil // nothing to undo
	case st.Action == scenario.ActionServerRestart && st.For == 0:
		if err := sf.ServerFault(ctx, fault, false, nfsserver.FaultTarget{}); err != nil {
			return nil, fmt.Errorf("%s: starting knfsd again: %w", st.Action, err)
		}
		return nil, nil
	}
	desc := "NFS server " + fault
	if st.EIO != nil {
		desc += " on " + describeTarget(*st.EIO)
	}
	return &effect{action: st.Action, step: st.ID, id: r.o.RunID + "-" + st.ID, kind: st.Action, desc: desc}, nil
}

// serverFaultApplied journals a lasting fault (so the report shades its
// window) and notes an instant one.
func serverFaultApplied(r *run, st *scenario.Step, e *effect) {
	switch {
	case e != nil:
		r.write(journal.Record{Type: journal.TypeFaultApplied, Fault: &journal.Fault{ID: e.id, Kind: e.kind, Description: e.desc}})
		// As netfault logs its faults: the lab VM's crash trial waits for it.
		r.log.Info("fault applied", "id", e.id, "kind", e.kind)
		r.note("fault", "%s applied: %s (id %s)", st.ID, e.desc, e.id)
	case st.Action == scenario.ActionServerExpire:
		r.note("fault", "%s: knfsd expired its clients' state", st.ID)
	default:
		r.note("fault", "%s: knfsd stopped and started again (grace period follows)", st.ID)
	}
}

func undoServerFault(ctx context.Context, r *run, e effect) undoOutcome {
	sf, err := r.serverFaulter()
	if err != nil {
		return undoOutcome{err: err}
	}
	if err := sf.ServerFault(ctx, serverFaults[e.action], false, nfsserver.FaultTarget{}); err != nil {
		return undoOutcome{err: fmt.Errorf("ending %s: %w", e.action, err)}
	}
	return undoOutcome{}
}

func serverFaultUndone(r *run, e *effect, _ undoOutcome) {
	r.write(journal.Record{Type: journal.TypeFaultHealed, Fault: &journal.Fault{ID: e.id, Kind: e.kind, Description: "step " + e.step}})
	what := map[string]string{scenario.ActionServerRestart: "knfsd started again (grace period follows)", scenario.ActionServerUnexport: "export added again", scenario.ActionServerFill: "ballast removed, the export has room again", scenario.ActionServerEIO: "the export device maps linear to its disk again"}[e.action]
	r.note("fault", "%s: %s", e.step, what)
}

// describeTarget says which sectors an eio step fails.
func describeTarget(t nfsserver.FaultTarget) string {
	switch {
	case t.Path != "" && t.Blocks != "":
		return t.Path + " sectors " + t.Blocks
	case t.Path != "":
		return t.Path
	}
	return "device sectors " + t.Blocks
}
