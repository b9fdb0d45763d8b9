package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// Options tune a run.
type Options struct {
	Clock   clock.Clock
	Journal Journal
	Logger  *slog.Logger
	// RunID labels the faults the run creates ("run:<id>").
	RunID     string
	Iteration int
	// FailFast ends the run as soon as one expectation failed.
	FailFast bool
	// SampleEvery is the fault-counter sampling period (default 1s).
	SampleEvery time.Duration
	// RollbackTimeout bounds the rollbacks (default 2m); they run on a
	// context that Ctrl-C does not cancel.
	RollbackTimeout time.Duration
	// OnEvent is called for every notable thing (plain output, live view).
	// It may be called from several goroutines.
	OnEvent func(Note)
	// OnStart, if set, receives the Runner when Run begins, so a live view
	// can poll its Status.
	OnStart func(*Runner)
}

// Note is one line of what happened, for people.
type Note struct {
	Time time.Time
	Kind string // step, fault, hit, exit, verdict, warn, rollback
	Text string
}

// Result is the outcome of one run.
type Result struct {
	Scenario    string
	Passed      bool
	Interrupted bool
	Reason      string
	Verdicts    []Verdict
	Lags        []time.Duration
	Lag         LagStats
	RolledBack  []string
	Err         error // setup or step errors; nil when the run itself worked
}

// LagStats summarises how late steps started relative to their plan.
type LagStats struct {
	N                  int
	P50, P99, Max, Avg time.Duration
}

func lagStats(lags []time.Duration) LagStats {
	if len(lags) == 0 {
		return LagStats{}
	}
	s := append([]time.Duration(nil), lags...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, l := range s {
		sum += l
	}
	pct := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return LagStats{N: len(s), P50: pct(0.50), P99: pct(0.99), Max: s[len(s)-1], Avg: sum / time.Duration(len(s))}
}

type msgKind int

const (
	mFire msgKind = iota
	mDone
	mForEnd
	mHit
	mEvent
	mSample
	mExit
	mCounters
	mTick
	mEnd
)

type msg struct {
	kind     msgKind
	step     int
	planned  time.Time
	err      error
	hit      journal.Hit
	event    Event
	sample   journal.LoadSample
	exit     Exit
	counters []netfault.Fault
	at       time.Time
}

// appliedFault is a fault the run created, kept for heal and rollback.
type appliedFault struct {
	step    string
	id      string
	netns   string
	kind    string
	faultfs bool
	healed  bool
	packets uint64
	bytes   uint64
	counted bool
	hitAt   time.Time
}

type stepState struct {
	started  time.Time
	planned  time.Time
	done     time.Time
	ended    time.Time // end of For (heal)
	running  bool
	err      error
	findings []netfault.Finding
}

type run struct {
	sc   *scenario.Scenario
	b    Backends
	o    Options
	clk  clock.Clock
	log  *slog.Logger
	msgs chan msg
	stop chan struct{}
	ctx  context.Context // the run's context, for steps started by events

	mu        sync.Mutex // guards the fields below, read by Status
	start     time.Time
	steps     []stepState
	faults    []*appliedFault
	paused    map[string]bool
	data      evalData
	info      StorageInfo
	lags      []time.Duration
	verdicts  []Verdict
	hitCount  map[string]int
	lastLoad  journal.LoadSample
	finished  bool
	stopping  bool // the loop returned: start no more steps
	actions   sync.WaitGroup
	jmu       sync.Mutex
	journalEr error
	// pending counts messages sent but not yet handled and actions in
	// flight; tests wait for it to reach zero between fake-clock steps.
	pending atomic.Int64
}

// Runner runs one scenario; Status may be read from another goroutine
// while Run runs (the live view does).
type Runner struct {
	r *run
}

// New prepares a run of sc; sc must have passed Validate.
func New(sc *scenario.Scenario, b Backends, o Options) *Runner {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.SampleEvery == 0 {
		o.SampleEvery = time.Second
	}
	if o.RollbackTimeout == 0 {
		o.RollbackTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RunID == "" {
		o.RunID = sc.Metadata.Name
	}
	return &Runner{r: &run{
		sc: sc, b: b, o: o, clk: o.Clock, log: o.Logger,
		msgs:     make(chan msg, 4096),
		stop:     make(chan struct{}),
		steps:    make([]stepState, len(sc.Timeline)),
		paused:   map[string]bool{},
		hitCount: map[string]int{},
	}}
}

// Run runs the scenario once. It always rolls back what it created, on
// every exit path, before it returns.
func Run(ctx context.Context, sc *scenario.Scenario, b Backends, o Options) *Result {
	return New(sc, b, o).Run(ctx)
}

func (r *run) write(rec journal.Record) {
	if r.o.Journal == nil {
		return
	}
	if rec.Time.IsZero() {
		rec.Time = r.clk.Now()
	}
	r.jmu.Lock()
	defer r.jmu.Unlock()
	if err := r.o.Journal.Write(rec); err != nil && r.journalEr == nil {
		r.journalEr = err
		r.log.Error("writing journal", "err", err)
	}
}

func (r *run) note(kind, format string, args ...any) {
	n := Note{Time: r.clk.Now(), Kind: kind, Text: fmt.Sprintf(format, args...)}
	r.log.Debug(n.Text, "kind", kind)
	if r.o.OnEvent != nil {
		r.o.OnEvent(n)
	}
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

// Run executes the timeline.
func (rn *Runner) Run(ctx context.Context) *Result {
	r := rn.r
	if r.o.OnStart != nil {
		r.o.OnStart(rn)
	}
	sc := r.sc
	res := &Result{Scenario: sc.Metadata.Name}
	r.write(journal.Record{Type: journal.TypeRunStart, Run: &journal.Run{
		ID: r.o.RunID, Scenario: sc.Metadata.Name, Title: sc.Metadata.Title,
		Summary: sc.Metadata.Description, Expected: expectedText(sc),
		Setup: setupLines(sc), Iteration: r.o.Iteration,
	}})

	err := r.setup(ctx)
	if err == nil {
		err = r.loop(ctx, res)
	}
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	if err != nil {
		res.Err = err
		r.note("warn", "run error: %v", err)
	}
	if ctx.Err() != nil {
		res.Interrupted = true
	}
	// Wait for in-flight actions: an Apply that is still running must
	// finish so that its fault can be healed.
	r.waitActions(r.o.RollbackTimeout)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.RollbackTimeout)
	res.RolledBack = r.rollback(rctx)
	cancel()
	close(r.stop)

	r.mu.Lock()
	r.finished = true
	r.data.now = r.clk.Now()
	r.data.ended = true
	vs := evaluate(sc, &r.data)
	r.verdicts = vs
	res.Lags = append([]time.Duration(nil), r.lags...)
	r.mu.Unlock()
	res.Verdicts = vs
	res.Lag = lagStats(res.Lags)
	res.Passed = res.Err == nil && !res.Interrupted
	for _, v := range vs {
		if !v.Skipped {
			r.write(journal.Record{Type: journal.TypeExpectation, Expectation: &journal.Expectation{Name: v.Name, Held: v.State == Held, Detail: v.Detail}})
		}
		if v.State != Held && !v.Skipped {
			res.Passed = false
		}
	}
	switch {
	case res.Interrupted:
		res.Reason = "interrupted"
	case res.Err != nil:
		res.Reason = res.Err.Error()
	case !res.Passed:
		res.Reason = "an expectation failed"
	default:
		res.Reason = "every expectation held"
	}
	r.write(journal.Record{Type: journal.TypeNote, Note: fmt.Sprintf("step start lag over %d steps: p50 %v, p99 %v, max %v", res.Lag.N, res.Lag.P50, res.Lag.P99, res.Lag.Max)})
	r.write(journal.Record{Type: journal.TypeRunEnd, End: &journal.End{Passed: res.Passed, Reason: res.Reason, Interrupted: res.Interrupted, RolledBack: res.RolledBack}})
	return res
}

func (r *run) waitActions(d time.Duration) {
	done := make(chan struct{})
	go func() { r.actions.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d): // real time: a hung backend must not hang the rollback forever
		r.note("warn", "actions still running after %v; rolling back anyway", d)
	}
}

func (r *run) setup(ctx context.Context) error {
	info, err := r.b.Storage.Setup(ctx)
	if err != nil {
		return fmt.Errorf("setting up storage: %w", err)
	}
	r.mu.Lock()
	r.info = info
	r.mu.Unlock()
	for _, d := range info.Detail {
		r.write(journal.Record{Type: journal.TypeNote, Note: "storage: " + d})
	}
	r.note("setup", "storage %s ready: data dir %s", r.sc.Storage.Kind, info.DataDir)
	if err := r.b.Target.Start(ctx, info.DataDir); err != nil {
		return fmt.Errorf("starting target %s: %w", r.sc.Target.Kind, err)
	}
	r.note("setup", "target %s started", r.sc.Target.Kind)
	return nil
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

func (r *run) loop(ctx context.Context, res *Result) error {
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

	start := r.clk.Now()
	r.mu.Lock()
	r.start = start
	r.data.start = start
	r.data.steps = r.steps
	r.data.faults = &r.faults
	r.mu.Unlock()

	var timers []clock.Timer
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
	}()
	for i := range sc.Timeline {
		st := &sc.Timeline[i]
		planned := start
		if st.At != nil {
			planned = start.Add(st.At.D())
			i := i
			// The timer starts the step itself rather than waking the loop:
			// one hop less between the deadline and the action.
			timers = append(timers, r.clk.AfterFunc(st.At.D(), func() { r.startStep(ctx, i, planned) }))
		}
		r.write(journal.Record{Time: start, Type: journal.TypeStepPlanned, Step: r.jstep(i, planned, time.Time{})})
	}
	timers = append(timers, r.clk.AfterFunc(sc.Duration.D(), func() { r.send(msg{kind: mEnd}) }))
	var (
		tickMu    sync.Mutex
		tickTimer clock.Timer
		tickOff   bool
		tick      func()
	)
	tick = func() {
		r.send(msg{kind: mTick})
		tickMu.Lock()
		defer tickMu.Unlock()
		if !tickOff {
			tickTimer = r.clk.AfterFunc(r.o.SampleEvery, tick)
		}
	}
	tickMu.Lock()
	tickTimer = r.clk.AfterFunc(r.o.SampleEvery, tick)
	tickMu.Unlock()
	defer func() {
		tickMu.Lock()
		tickOff = true
		tickTimer.Stop()
		tickMu.Unlock()
	}()
	r.note("start", "timeline started (%v)", sc.Duration)

	var stepErr error
	sampling := false
	for {
		var m msg
		select {
		case <-ctx.Done():
			r.note("warn", "interrupted: rolling back")
			return nil
		case m = <-r.msgs:
		}
		switch m.kind {
		case mEnd:
			r.note("end", "timeline ended after %v", sc.Duration)
			return stepErr
		case mFire:
			r.startStep(ctx, m.step, m.planned)
		case mDone:
			st := &sc.Timeline[m.step]
			r.mu.Lock()
			ss := &r.steps[m.step]
			ss.running = false
			ss.err = m.err
			r.mu.Unlock()
			if m.err != nil {
				r.write(journal.Record{Type: journal.TypeStepDone, Step: r.jstepErr(m.step, m.err)})
				r.note("warn", "step %s failed: %v", st.ID, m.err)
				if stepErr == nil {
					stepErr = fmt.Errorf("step %s: %w", st.ID, m.err)
				}
				// A failed step cannot be judged; stop and roll back.
				return stepErr
			}
			r.mu.Lock()
			forDone := r.data.forDone[m.step]
			r.mu.Unlock()
			if st.For > 0 && !forDone {
				i := m.step
				timers = append(timers, r.clk.AfterFunc(st.For.D(), func() { r.send(msg{kind: mForEnd, step: i}) }))
				break // out of the switch: the step ends when For does
			}
			r.finishStep(ctx, m.step)
		case mForEnd:
			r.endFor(ctx, m.step)
		case mHit:
			now := r.clk.Now()
			r.mu.Lock()
			r.data.hits = append(r.data.hits, seenHit{at: now, hit: m.hit})
			r.hitCount[m.hit.Detector]++
			r.mu.Unlock()
			r.write(journal.Record{Time: now, Type: journal.TypeDetectorHit, Hit: &m.hit})
			r.note("hit", "%s: %s", m.hit.Detector, firstLine(m.hit.Evidence))
			r.trigger(m.hit.Detector, now)
		case mEvent:
			now := r.clk.Now()
			r.mu.Lock()
			h := journal.Hit{Detector: m.event.Name, Time: m.event.Time, Source: "target", Evidence: m.event.Evidence}
			r.data.hits = append(r.data.hits, seenHit{at: now, hit: h})
			r.hitCount[m.event.Name]++
			r.mu.Unlock()
			r.write(journal.Record{Time: now, Type: journal.TypeDetectorHit, Hit: &h})
			r.note("hit", "%s (from the target): %s", m.event.Name, firstLine(m.event.Evidence))
			r.trigger(m.event.Name, now)
		case mSample:
			if m.sample.T.IsZero() {
				m.sample.T = r.clk.Now()
			}
			r.mu.Lock()
			r.data.samples = append(r.data.samples, seenSample{at: r.clk.Now(), s: m.sample})
			r.lastLoad = m.sample
			r.mu.Unlock()
			r.write(journal.Record{Time: m.sample.T, Type: journal.TypeLoadSample, Load: &m.sample})
		case mExit:
			now := r.clk.Now()
			r.mu.Lock()
			e := m.exit
			if e.Time.IsZero() {
				e.Time = now
			}
			e.Time = now
			r.data.exits = append(r.data.exits, e)
			r.mu.Unlock()
			r.write(journal.Record{Time: now, Type: journal.TypeNote, Note: fmt.Sprintf("target %s exited with status %d %s", e.Name, e.Code, e.Signal)})
			r.note("exit", "target %s exited with status %d %s", e.Name, e.Code, e.Signal)
			r.trigger(scenario.EventTargetExited, now)
		case mTick:
			if !sampling {
				sampling = true
				r.pending.Add(1)
				go func() {
					defer r.pending.Add(-1)
					r.sampleCounters(ctx)
				}()
			}
		case mCounters:
			sampling = false
			r.recordCounters(m.counters, m.at)
		}
		r.pending.Add(-1)
		if done, failed := r.decided(); done || (failed && r.o.FailFast) {
			if failed && r.o.FailFast {
				r.note("verdict", "an expectation failed; ending early (--fail-fast)")
			} else {
				r.note("verdict", "every expectation has a verdict; ending early")
			}
			return stepErr
		}
	}
}

// decided evaluates the expectations so far.
func (r *run) decided() (all, anyFailed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.data.now = r.clk.Now()
	vs := evaluate(r.sc, &r.data)
	r.verdicts = vs
	all = true
	for _, v := range vs {
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

// trigger starts every not-yet-started step waiting on ev.
func (r *run) trigger(ev string, at time.Time) {
	r.mu.Lock()
	if r.data.events == nil {
		r.data.events = map[string]time.Time{}
	}
	if _, seen := r.data.events[ev]; !seen {
		r.data.events[ev] = at
	}
	r.mu.Unlock()
	for i := range r.sc.Timeline {
		st := &r.sc.Timeline[i]
		r.mu.Lock()
		ss := &r.steps[i]
		waiting := st.On == ev && ss.planned.IsZero()
		if waiting {
			ss.planned = at.Add(st.Delay.D())
		}
		planned := ss.planned
		r.mu.Unlock()
		if !waiting {
			continue
		}
		r.note("step", "%s: event %s seen, starting step %s in %v", st.ID, ev, st.ID, st.Delay)
		if st.Delay == 0 {
			r.startStep(r.ctx, i, planned)
		} else {
			i := i
			r.clk.AfterFunc(st.Delay.D(), func() { r.startStep(r.ctx, i, planned) })
		}
	}
}

func (r *run) jstep(i int, planned, actual time.Time) *journal.Step {
	st := &r.sc.Timeline[i]
	js := &journal.Step{Index: i, Name: st.ID, Action: st.Action, Detail: stepDetail(st), On: st.On, For: st.For.D(), PlannedAt: planned, ActualAt: actual}
	if !planned.IsZero() && !r.start.IsZero() {
		js.Offset = planned.Sub(r.start)
	}
	if !actual.IsZero() && !planned.IsZero() {
		js.Lag = actual.Sub(planned)
	}
	return js
}

func (r *run) jstepErr(i int, err error) *journal.Step {
	r.mu.Lock()
	ss := r.steps[i]
	r.mu.Unlock()
	js := r.jstep(i, ss.planned, ss.started)
	js.Err = err.Error()
	return js
}

func (r *run) startStep(ctx context.Context, i int, planned time.Time) {
	now := r.clk.Now()
	st := &r.sc.Timeline[i]
	r.mu.Lock()
	ss := &r.steps[i]
	if !ss.started.IsZero() || r.stopping {
		r.mu.Unlock()
		return // each step runs once, and none after the timeline ended
	}
	ss.planned = planned
	ss.started = now
	ss.running = true
	lag := now.Sub(planned)
	r.lags = append(r.lags, lag)
	r.mu.Unlock()
	r.write(journal.Record{Time: now, Type: journal.TypeStepStarted, Step: r.jstep(i, planned, now)})
	r.note("step", "%s: %s started (+%v, lag %v)", st.ID, st.Action, planned.Sub(r.start).Round(time.Millisecond), lag.Round(time.Microsecond))
	r.actions.Add(1)
	r.pending.Add(1)
	go func() {
		defer r.actions.Done()
		defer r.pending.Add(-1)
		err := r.do(ctx, i, st)
		r.send(msg{kind: mDone, step: i, err: err})
	}()
}

func (r *run) finishStep(ctx context.Context, i int) {
	now := r.clk.Now()
	r.mu.Lock()
	r.steps[i].done = now
	ss := r.steps[i]
	r.mu.Unlock()
	r.write(journal.Record{Time: now, Type: journal.TypeStepDone, Step: r.jstep(i, ss.planned, ss.started)})
	r.trigger(scenario.EventStepDone+r.sc.Timeline[i].ID, now)
}

// endFor ends a step's For: heal its fault, clear its faultfs rule,
// unpause. Then the step is done.
func (r *run) endFor(ctx context.Context, i int) {
	st := &r.sc.Timeline[i]
	r.actions.Add(1)
	r.pending.Add(1)
	go func() {
		defer r.actions.Done()
		defer r.pending.Add(-1)
		var err error
		switch st.Action {
		case scenario.ActionDrop, scenario.ActionReject, scenario.ActionUnreachable, scenario.ActionDelay, scenario.ActionLimit:
			err = r.healStep(ctx, st.ID)
		case scenario.ActionFaultfsSet:
			err = r.clearFaultfs(ctx, st.ID)
		case scenario.ActionPause:
			err = r.b.Target.Control(ctx, scenario.ActionUnpause, st.Container)
			if err == nil {
				r.mu.Lock()
				delete(r.paused, st.Container)
				r.mu.Unlock()
			}
		}
		if err != nil {
			r.note("warn", "ending %s after %v: %v", st.ID, st.For, err)
		}
		r.mu.Lock()
		r.steps[i].ended = r.clk.Now()
		r.mu.Unlock()
		r.send(msg{kind: mDone, step: i, err: err, planned: time.Time{}})
	}()
	// The goroutine's mDone re-enters the loop; mark the step so that this
	// time it finishes.
	r.forEnded(i)
}

// forEnded marks step i so that its next mDone finishes it.
func (r *run) forEnded(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.data.forDone == nil {
		r.data.forDone = map[int]bool{}
	}
	r.data.forDone[i] = true
}

// firstLine is the first evidence line that says something: banners such
// as the JVM's fatal error report start with bare "#" lines.
func firstLine(ev []string) string {
	for _, l := range ev {
		t := strings.TrimSpace(strings.Trim(strings.TrimSpace(l), "#"))
		n := 0
		for _, c := range t {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
				n++
			}
		}
		if n >= 3 {
			return t
		}
	}
	if len(ev) == 0 {
		return ""
	}
	return strings.TrimSpace(ev[0])
}

// do performs step st's action.
func (r *run) do(ctx context.Context, i int, st *scenario.Step) error {
	switch st.Action {
	case scenario.ActionDrop, scenario.ActionReject, scenario.ActionUnreachable, scenario.ActionDelay, scenario.ActionLimit:
		return r.applyFault(ctx, st)
	case scenario.ActionHeal:
		if st.Ref == "all" {
			return r.healAll(ctx, false)
		}
		return r.healStep(ctx, st.Ref)
	case scenario.ActionPause, scenario.ActionUnpause, scenario.ActionStop, scenario.ActionKill, scenario.ActionRestart:
		if err := r.b.Target.Control(ctx, st.Action, st.Container); err != nil {
			return err
		}
		r.mu.Lock()
		if st.Action == scenario.ActionPause {
			r.paused[st.Container] = true
		} else if st.Action == scenario.ActionUnpause {
			delete(r.paused, st.Container)
		}
		r.mu.Unlock()
		return nil
	case scenario.ActionFaultfsSet:
		id := r.faultfsID(st.ID)
		if err := r.b.Storage.SetFault(ctx, id, *st.Faultfs); err != nil {
			return fmt.Errorf("setting faultfs rule: %w", err)
		}
		r.mu.Lock()
		r.faults = append(r.faults, &appliedFault{step: st.ID, id: id, kind: "faultfs", faultfs: true})
		r.mu.Unlock()
		r.write(journal.Record{Type: journal.TypeFaultApplied, Fault: &journal.Fault{ID: id, Kind: "faultfs", Description: faultfsText(st.Faultfs)}})
		r.note("fault", "faultfs rule %s set: %s", id, faultfsText(st.Faultfs))
		return nil
	case scenario.ActionFaultfsClear:
		if st.Ref == "all" {
			return r.clearAllFaultfs(ctx)
		}
		return r.clearFaultfs(ctx, st.Ref)
	case scenario.ActionRestartTarget:
		var between func(context.Context) error
		if st.DropCache {
			between = r.b.Storage.DropCache
		}
		if err := r.b.Target.Restart(ctx, between); err != nil {
			return fmt.Errorf("restarting target: %w", err)
		}
		r.note("step", "%s: target restarted%s", st.ID, map[bool]string{true: " with a cold page cache"}[st.DropCache])
		return nil
	case scenario.ActionWait:
		return nil // For does the waiting
	}
	return fmt.Errorf("unknown action %q", st.Action)
}

func (r *run) faultfsID(step string) string { return r.o.RunID + "-" + step }

func (r *run) resolve(ctx context.Context) func(string) (string, error) {
	return func(ref string) (string, error) {
		if ref == scenario.RefNFSServer {
			r.mu.Lock()
			a := r.info.ServerAddr
			r.mu.Unlock()
			if a == "" {
				return "", errors.New("the storage reported no NFS server address")
			}
			return a, nil
		}
		return r.b.Target.Resolve(ctx, ref)
	}
}

// faultSpec builds the netfault spec of st, with the lifetime enforced in
// the kernel as a safety net: For plus a margin, or the rest of the run.
func (r *run) faultSpec(ctx context.Context, st *scenario.Step) (netfault.Spec, error) {
	spec, err := st.NetfaultSpec(r.resolve(ctx))
	if err != nil {
		return spec, err
	}
	if st.Fault.In != "" {
		ns, err := r.b.Target.Netns(ctx, st.Fault.In)
		if err != nil {
			return spec, fmt.Errorf("finding the network namespace of %s: %w", st.Fault.In, err)
		}
		spec.Netns = ns
	}
	life := st.For.D()
	if life == 0 {
		life = r.sc.Duration.D()
	}
	spec.For = life + time.Minute
	spec.Label = labelFor(r.o.RunID, st.ID)
	return spec, nil
}

// labelFor is the fault label: it names the run and the step so that
// `nfslab status` shows whose fault it is.
func labelFor(run, step string) string {
	l := "nfslab-run:" + run + " step:" + step
	if len(l) > 64 {
		l = l[:64]
	}
	return l
}

func (r *run) applyFault(ctx context.Context, st *scenario.Step) error {
	spec, err := r.faultSpec(ctx, st)
	if err != nil {
		return err
	}
	f, err := r.b.Faults.Apply(ctx, spec)
	if err != nil {
		return fmt.Errorf("applying %s to %s: %w", st.Action, spec.Dst, err)
	}
	r.mu.Lock()
	r.faults = append(r.faults, &appliedFault{step: st.ID, id: f.ID, netns: spec.Netns, kind: string(spec.Kind), counted: spec.Counted()})
	r.mu.Unlock()
	// The commands as applied: the fault's ID, its --datestop.
	rules := append(append([]string{}, f.Rules...), f.Routes...)
	r.write(journal.Record{Type: journal.TypeFaultApplied, Fault: &journal.Fault{ID: f.ID, Kind: string(spec.Kind), Description: specText(spec), Rules: rules}})
	r.note("fault", "%s applied: %s (id %s)", st.ID, specText(spec), f.ID)
	return nil
}

// healStep heals the network faults of step id, after asking Diagnose why
// a fault that matched nothing matched nothing.
func (r *run) healStep(ctx context.Context, step string) error {
	var errs []error
	for _, f := range r.faultsOf(step, false) {
		errs = append(errs, r.healOne(ctx, f))
	}
	return errors.Join(errs...)
}

func (r *run) faultsOf(step string, faultfs bool) []*appliedFault {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*appliedFault
	for _, f := range r.faults {
		if (step == "" || f.step == step) && f.faultfs == faultfs && !f.healed {
			out = append(out, f)
		}
	}
	return out
}

func (r *run) healOne(ctx context.Context, f *appliedFault) error {
	var findings []string
	if f.counted {
		// Last counters before the rule goes.
		if list, err := r.b.Faults.List(ctx, f.netns); err == nil {
			r.recordCounters(list, r.clk.Now())
		}
		r.mu.Lock()
		zero := f.packets == 0
		r.mu.Unlock()
		if zero {
			fs, err := r.b.Faults.Diagnose(ctx, f.netns, f.id)
			if err != nil {
				r.note("warn", "diagnosing %s: %v", f.id, err)
			}
			r.mu.Lock()
			for i := range r.sc.Timeline {
				if r.sc.Timeline[i].ID == f.step {
					r.steps[i].findings = append(r.steps[i].findings, fs...)
				}
			}
			r.mu.Unlock()
			for _, x := range fs {
				findings = append(findings, x.Cause+": "+x.Detail)
				r.note("warn", "%s matched no traffic: %s: %s", f.step, x.Cause, x.Detail)
			}
		}
	}
	err := r.b.Faults.Heal(ctx, f.netns, f.id)
	if errors.Is(err, netfault.ErrNotFound) {
		err = nil // expired or healed by someone else: done
	}
	if err != nil {
		return fmt.Errorf("healing %s: %w", f.id, err)
	}
	r.mu.Lock()
	f.healed = true
	pk, by, counted := f.packets, f.bytes, f.counted
	r.mu.Unlock()
	r.write(journal.Record{Type: journal.TypeFaultHealed, Fault: &journal.Fault{ID: f.id, Kind: f.kind, Description: fmt.Sprintf("step %s: %d packets, %d bytes", f.step, pk, by), Findings: findings}})
	if counted {
		r.note("fault", "%s healed (id %s): %d packets matched", f.step, f.id, pk)
	} else {
		r.note("fault", "%s healed (id %s)", f.step, f.id)
	}
	return nil
}

func (r *run) healAll(ctx context.Context, _ bool) error {
	var errs []error
	for _, f := range r.faultsOf("", false) {
		errs = append(errs, r.healOne(ctx, f))
	}
	return errors.Join(errs...)
}

func (r *run) clearFaultfs(ctx context.Context, step string) error {
	var errs []error
	for _, f := range r.faultsOf(step, true) {
		errs = append(errs, r.clearOne(ctx, f))
	}
	return errors.Join(errs...)
}

func (r *run) clearAllFaultfs(ctx context.Context) error { return r.clearFaultfs(ctx, "") }

func (r *run) clearOne(ctx context.Context, f *appliedFault) error {
	if err := r.b.Storage.ClearFault(ctx, f.id); err != nil && !errors.Is(err, netfault.ErrNotFound) {
		return fmt.Errorf("clearing faultfs rule %s: %w", f.id, err)
	}
	r.mu.Lock()
	f.healed = true
	r.mu.Unlock()
	r.write(journal.Record{Type: journal.TypeFaultHealed, Fault: &journal.Fault{ID: f.id, Kind: "faultfs", Description: "step " + f.step}})
	r.note("fault", "faultfs rule %s cleared", f.id)
	return nil
}

// sampleCounters lists the counters of the active rule faults, one List
// per namespace, and hands them to the loop.
func (r *run) sampleCounters(ctx context.Context) {
	nss := map[string]bool{}
	for _, f := range r.faultsOf("", false) {
		if f.counted {
			nss[f.netns] = true
		}
	}
	var all []netfault.Fault
	for ns := range nss {
		list, err := r.b.Faults.List(ctx, ns)
		if err != nil {
			r.log.Debug("listing faults", "netns", ns, "err", err)
			continue
		}
		all = append(all, list...)
	}
	r.send(msg{kind: mCounters, counters: all, at: r.clk.Now()})
}

func (r *run) recordCounters(list []netfault.Fault, at time.Time) {
	byID := map[string]netfault.Fault{}
	for _, f := range list {
		byID[f.ID] = f
	}
	var firstHits []string
	r.mu.Lock()
	var recs []journal.Record
	for _, af := range r.faults {
		f, ok := byID[af.id]
		if !ok || af.healed || af.faultfs {
			continue
		}
		if f.Packets >= af.packets {
			af.packets, af.bytes = f.Packets, f.Bytes
		}
		if af.packets > 0 && af.hitAt.IsZero() {
			af.hitAt = at
			firstHits = append(firstHits, af.step)
		}
		recs = append(recs, journal.Record{Time: at, Type: journal.TypeFaultCounters, Counters: &journal.FaultCounters{ID: af.id, Kind: af.kind, Packets: f.Packets, Bytes: f.Bytes, Counted: f.Counted}})
	}
	r.mu.Unlock()
	for _, rec := range recs {
		r.write(rec)
	}
	for _, s := range firstHits {
		r.note("fault", "%s: first packets matched", s)
		r.trigger(scenario.EventFaultFirstHit+s, at)
	}
}

// rollback heals everything the run created, runs the scenario's
// rollbacks, and stops the target, the load and the storage. It runs every
// part even when one fails, and returns what it removed.
func (r *run) rollback(ctx context.Context) []string {
	var done []string
	warn := func(what string, err error) {
		if err != nil {
			r.note("rollback", "%s: %v", what, err)
			r.write(journal.Record{Type: journal.TypeNote, Note: "rollback: " + what + ": " + err.Error()})
		}
	}
	for _, f := range r.faultsOf("", false) {
		err := r.healOne(ctx, f)
		warn("healing "+f.id, err)
		if err == nil {
			done = append(done, "fault "+f.id)
		}
	}
	for _, f := range r.faultsOf("", true) {
		err := r.clearOne(ctx, f)
		warn("clearing "+f.id, err)
		if err == nil {
			done = append(done, "faultfs "+f.id)
		}
	}
	r.mu.Lock()
	var paused []string
	for c := range r.paused {
		paused = append(paused, c)
	}
	r.mu.Unlock()
	for _, c := range paused {
		err := r.b.Target.Control(ctx, scenario.ActionUnpause, c)
		warn("unpausing "+c, err)
		if err == nil {
			done = append(done, "unpaused "+cmp.Or(c, "target"))
		}
	}
	for i := range r.sc.Rollbacks {
		st := &r.sc.Rollbacks[i]
		err := r.do(ctx, -1, st)
		warn("rollback "+st.Action, err)
		if err == nil {
			done = append(done, "rollback "+st.Action)
		}
	}
	if r.b.Load != nil {
		warn("stopping load", r.b.Load.Stop(ctx))
	}
	if err := r.b.Target.Close(ctx); err != nil {
		warn("stopping target", err)
	} else {
		done = append(done, "target stopped")
	}
	if err := r.b.Storage.Teardown(ctx); err != nil {
		warn("tearing down storage", err)
	} else {
		done = append(done, "storage torn down")
	}
	r.note("rollback", "rolled back: %s", strings.Join(done, ", "))
	return done
}
