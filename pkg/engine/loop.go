package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

type msgKind int

const (
	mStart    msgKind = iota // a timer: start step at planned
	mApplied                 // a step's action returned
	mForEnd                  // a timer: step's For is over
	mUndone                  // the undo at the end of step's For returned
	mCounters                // the counter sampler returned
	mTick                    // a timer: sample the counters
	mEnd                     // a timer: the timeline's duration is over
	mHit
	mEvent
	mSample
	mExit
)

type msg struct {
	kind     msgKind
	step     int
	planned  time.Time
	work     *stepWork
	jobs     []undoJob
	hit      journal.Hit
	event    Event
	sample   journal.LoadSample
	exit     Exit
	counters []netfault.Fault
	at       time.Time
}

type stepState struct {
	started  time.Time
	planned  time.Time
	done     time.Time
	ended    time.Time // end of For (the undo)
	err      error
	findings []netfault.Finding
}

// run is one run's state. Everything below the line is owned by the
// goroutine that runs Run (setup, the loop, the drain and the rollback);
// other goroutines (timers, forwarders, workers calling backends) only
// send it messages. Workers read sc, b, o, clk and info, which do not
// change once the loop starts.
type run struct {
	sc   *scenario.Scenario
	b    Backends
	o    Options
	clk  clock.Clock
	log  *slog.Logger
	msgs chan msg
	stop chan struct{} // closed when Run is done: late senders give up
	// pending counts messages sent but not yet handled and workers in
	// flight; tests wait for it to reach zero between fake-clock steps.
	pending atomic.Int64
	status  atomic.Pointer[snapshot] // for Status

	ctx        context.Context // the loop's context, for the workers it starts
	info       StorageInfo
	data       evalData
	timers     []clock.Timer
	tick       clock.Timer
	ticks      int
	inflight   int  // workers started and not yet reported
	sampling   bool // a counter sampler is in flight
	stopping   bool // the loop returned: start no more steps
	finished   bool
	stepErr    error
	lags       []time.Duration
	verdicts   []Verdict
	hitCount   map[string]int
	lastLoad   journal.LoadSample
	journalErr error
}

// send delivers m to the loop without blocking a timer callback.
func (r *run) send(m msg) {
	r.pending.Add(1)
	select {
	case r.msgs <- m:
	default:
		go func() {
			select {
			case r.msgs <- m:
			case <-r.stop:
			}
		}()
	}
}

// spawn runs f off the loop (a backend call) and sends its message back.
func (r *run) spawn(f func() msg) {
	r.inflight++
	r.pending.Add(1)
	go func() {
		defer r.pending.Add(-1)
		r.send(f())
	}()
}

// forward copies a channel into the loop until it closes or the run stops.
func forward[T any](r *run, ch <-chan T, wrap func(T) msg) {
	if ch == nil {
		return
	}
	go func() {
		for {
			select {
			case v, ok := <-ch:
				if !ok {
					return
				}
				r.send(wrap(v))
			case <-r.stop:
				return
			}
		}
	}()
}

// loop runs the timeline until it ends, a step fails, the verdict is
// known or ctx is done.
func (r *run) loop(ctx context.Context) error {
	sc := r.sc
	r.ctx = ctx
	lctx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	if r.b.Load != nil {
		samples, err := r.b.Load.Start(lctx)
		if err != nil {
			return fmt.Errorf("starting load: %w", err)
		}
		forward(r, samples, func(s journal.LoadSample) msg { return msg{kind: mSample, sample: s} })
	}
	if r.b.Detector != nil {
		forward(r, r.b.Detector.Run(lctx, r.b.Target.Lines()), func(h journal.Hit) msg { return msg{kind: mHit, hit: h} })
	}
	forward(r, r.b.Target.Events(), func(e Event) msg { return msg{kind: mEvent, event: e} })
	forward(r, r.b.Target.Exited(), func(e Exit) msg { return msg{kind: mExit, exit: e} })

	r.data.start = r.clk.Now()
	r.schedule()
	r.note("start", "timeline started (%v)", sc.Duration)
	r.publish()
	for {
		select {
		case <-ctx.Done():
			r.note("warn", "interrupted: rolling back")
			return nil
		case m := <-r.msgs:
			end := r.handle(m)
			r.pending.Add(-1)
			if end {
				return r.stepErr
			}
		}
		done, failed := r.decided()
		r.publish()
		if done || (failed && r.o.FailFast) {
			if failed && r.o.FailFast {
				r.note("verdict", "an expectation failed; ending early (--fail-fast)")
			} else {
				r.note("verdict", "every expectation has a verdict; ending early")
			}
			return r.stepErr
		}
	}
}

// drain takes what workers still in flight report after the loop
// returned, so that a fault whose Apply was running is known and healed.
func (r *run) drain(d time.Duration) {
	deadline := time.After(d) // real time: a hung backend must not hang the rollback forever
	for r.inflight > 0 {
		select {
		case m := <-r.msgs:
			r.pending.Add(-1)
			switch m.kind {
			case mApplied:
				r.inflight--
				r.record(m.work)
			case mUndone:
				r.inflight--
				r.recordUndo(m.jobs)
			case mCounters:
				r.inflight--
			}
		case <-deadline:
			r.note("warn", "actions still running after %v; rolling back anyway", d)
			return
		}
	}
}

// handle applies one message to the run's state; it reports whether the
// run must end (the timeline is over or a step failed).
func (r *run) handle(m msg) (end bool) {
	sc := r.sc
	now := r.clk.Now()
	switch m.kind {
	case mEnd:
		r.note("end", "timeline ended after %v", sc.Duration)
		return true
	case mStart:
		r.startStep(m.step, m.planned)
	case mApplied:
		r.inflight--
		err := r.record(m.work)
		if st := &sc.Timeline[m.step]; err == nil && st.For > 0 {
			r.after(st.For.D(), msg{kind: mForEnd, step: m.step})
			return false // the step ends when For does
		}
		return r.stepDone(m.step, err)
	case mForEnd:
		r.endFor(m.step)
	case mUndone:
		r.inflight--
		err := r.recordUndo(m.jobs)
		r.data.steps[m.step].ended = now
		if err != nil {
			st := &sc.Timeline[m.step]
			r.note("warn", "ending %s after %v: %v", st.ID, st.For, err)
		}
		return r.stepDone(m.step, err)
	case mTick:
		r.sample()
	case mCounters:
		r.inflight--
		r.sampling = false
		r.recordCounters(m.counters, m.at)
	case mHit:
		r.hit(now, m.hit, "%s: %s", m.hit.Detector, firstLine(m.hit.Evidence))
	case mEvent:
		h := journal.Hit{Detector: m.event.Name, Time: m.event.Time, Source: "target", Evidence: m.event.Evidence}
		r.hit(now, h, "%s (from the target): %s", m.event.Name, firstLine(m.event.Evidence))
	case mSample:
		if m.sample.T.IsZero() {
			m.sample.T = now
		}
		r.data.samples = append(r.data.samples, seenSample{at: now, s: m.sample})
		r.lastLoad = m.sample
		r.write(journal.Record{Time: m.sample.T, Type: journal.TypeLoadSample, Load: &m.sample})
	case mExit:
		e := m.exit
		e.Time = now // when the engine saw it, like hits
		r.data.exits = append(r.data.exits, e)
		r.write(journal.Record{Time: now, Type: journal.TypeNote, Note: fmt.Sprintf("target %s exited with status %d %s", e.Name, e.Code, e.Signal)})
		r.note("exit", "target %s exited with status %d %s", e.Name, e.Code, e.Signal)
		r.trigger(scenario.EventTargetExited, now)
	}
	return false
}

// hit records a detector hit or a target event, and triggers its steps.
func (r *run) hit(now time.Time, h journal.Hit, format string, args ...any) {
	r.data.hits = append(r.data.hits, seenHit{at: now, hit: h})
	r.hitCount[h.Detector]++
	r.write(journal.Record{Time: now, Type: journal.TypeDetectorHit, Hit: &h})
	r.note("hit", format, args...)
	r.trigger(h.Detector, now)
}

// decided evaluates the expectations so far.
func (r *run) decided() (all, anyFailed bool) {
	r.data.now = r.clk.Now()
	r.verdicts = evaluate(r.sc, &r.data)
	all = true
	for _, v := range r.verdicts {
		if v.Skipped {
			continue
		}
		if v.State == Pending {
			all = false
		}
		if v.State == Failed {
			anyFailed = true
		}
	}
	return all, anyFailed
}

// trigger starts, or times, every not-yet-planned step waiting on ev.
func (r *run) trigger(ev string, at time.Time) {
	if r.data.events == nil {
		r.data.events = map[string]time.Time{}
	}
	if _, seen := r.data.events[ev]; !seen {
		r.data.events[ev] = at
	}
	for i := range r.sc.Timeline {
		st := &r.sc.Timeline[i]
		ss := &r.data.steps[i]
		if st.On != ev || !ss.planned.IsZero() || r.stopping {
			continue
		}
		ss.planned = at.Add(st.Delay.D())
		r.note("step", "%s: event %s seen, starting step %s in %v", st.ID, ev, st.ID, st.Delay)
		if st.Delay == 0 {
			r.startStep(i, ss.planned)
		} else {
			r.at(ss.planned, msg{kind: mStart, step: i, planned: ss.planned})
		}
	}
}

// startStep starts step i, once, and hands its action to a worker.
func (r *run) startStep(i int, planned time.Time) {
	ss := &r.data.steps[i]
	if !ss.started.IsZero() || r.stopping {
		return // each step runs once, and none after the timeline ended
	}
	now := r.clk.Now()
	st := &r.sc.Timeline[i]
	ss.planned = planned
	ss.started = now
	lag := now.Sub(planned)
	r.lags = append(r.lags, lag)
	r.write(journal.Record{Time: now, Type: journal.TypeStepStarted, Step: r.jstep(i, planned, now)})
	r.note("step", "%s: %s started (+%v, lag %v)", st.ID, st.Action, planned.Sub(r.data.start).Round(time.Millisecond), lag.Round(time.Microsecond))
	w := r.prepare(st)
	ctx := r.ctx
	r.spawn(func() msg {
		w.do(ctx, r)
		return msg{kind: mApplied, step: i, work: w}
	})
}

// endFor undoes what step i left behind, through the same undo as the
// rollback; then the step is done.
func (r *run) endFor(i int) {
	jobs := r.undoJobs(func(e *effect) bool { return e.step == r.sc.Timeline[i].ID })
	ctx := r.ctx
	r.spawn(func() msg {
		r.undo(ctx, jobs)
		return msg{kind: mUndone, step: i, jobs: jobs}
	})
}

// stepDone ends step i: a failed step ends the run (it cannot be judged);
// otherwise the steps waiting on it are triggered.
func (r *run) stepDone(i int, err error) (end bool) {
	st := &r.sc.Timeline[i]
	ss := &r.data.steps[i]
	ss.err = err
	if err != nil {
		js := r.jstep(i, ss.planned, ss.started)
		js.Err = err.Error()
		r.write(journal.Record{Type: journal.TypeStepDone, Step: js})
		r.note("warn", "step %s failed: %v", st.ID, err)
		if r.stepErr == nil {
			r.stepErr = fmt.Errorf("step %s: %w", st.ID, err)
		}
		return true
	}
	now := r.clk.Now()
	ss.done = now
	r.write(journal.Record{Time: now, Type: journal.TypeStepDone, Step: r.jstep(i, ss.planned, ss.started)})
	r.trigger(scenario.EventStepDone+st.ID, now)
	return false
}

func (r *run) jstep(i int, planned, actual time.Time) *journal.Step {
	st := &r.sc.Timeline[i]
	js := &journal.Step{Index: i, Name: st.ID, Action: st.Action, Detail: stepDetail(st), On: st.On, For: st.For.D(), PlannedAt: planned, ActualAt: actual}
	if !planned.IsZero() && !r.data.start.IsZero() {
		js.Offset = planned.Sub(r.data.start)
	}
	if !actual.IsZero() && !planned.IsZero() {
		js.Lag = actual.Sub(planned)
	}
	return js
}

// sample starts a counter sampler unless one is in flight: it lists the
// active rule faults, one List per namespace.
func (r *run) sample() {
	r.armTick()
	if r.sampling {
		return
	}
	nss := map[string]bool{}
	for _, e := range r.data.effects {
		if e.network() && e.counted && !e.undone {
			nss[e.netns] = true
		}
	}
	r.sampling = true
	ctx := r.ctx
	r.spawn(func() msg {
		var all []netfault.Fault
		for ns := range nss {
			list, err := r.listFaults(ctx, ns)
			if err != nil {
				r.log.Debug("listing faults", "netns", ns, "err", err)
				continue
			}
			all = append(all, list...)
		}
		return msg{kind: mCounters, counters: all, at: r.clk.Now()}
	})
}

// recordCounters takes the counters of the run's rule faults from list and
// triggers fault-first-hit for the ones that matched their first packets.
func (r *run) recordCounters(list []netfault.Fault, at time.Time) {
	byID := map[string]netfault.Fault{}
	for _, f := range list {
		byID[f.ID] = f
	}
	var firstHits []string
	for _, e := range r.data.effects {
		f, ok := byID[e.id]
		if !ok || e.undone || !e.network() {
			continue
		}
		if f.Packets >= e.packets {
			e.packets, e.bytes = f.Packets, f.Bytes
		}
		if e.packets > 0 && e.hitAt.IsZero() {
			e.hitAt = at
			firstHits = append(firstHits, e.step)
		}
		r.write(journal.Record{Time: at, Type: journal.TypeFaultCounters, Counters: &journal.FaultCounters{ID: e.id, Kind: e.kind, Packets: f.Packets, Bytes: f.Bytes, Counted: f.Counted}})
	}
	for _, s := range firstHits {
		r.note("fault", "%s: first packets matched", s)
		r.trigger(scenario.EventFaultFirstHit+s, at)
	}
}
