package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/journal"
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
	// OnEvent is called for every notable thing (plain output, live view),
	// from the goroutine that runs Run.
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
	r := &run{
		sc: sc, b: b, o: o, clk: o.Clock, log: o.Logger,
		msgs:     make(chan msg, 4096),
		stop:     make(chan struct{}),
		data:     evalData{steps: make([]stepState, len(sc.Timeline))},
		hitCount: map[string]int{},
	}
	r.publish()
	return &Runner{r: r}
}

// Run runs the scenario once. It always rolls back what it created, on
// every exit path, before it returns.
func Run(ctx context.Context, sc *scenario.Scenario, b Backends, o Options) *Result {
	return New(sc, b, o).Run(ctx)
}

// Run executes the timeline. The calling goroutine owns the run's state
// from setup to rollback: timers, triggers and backend calls only send it
// messages.
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
		err = r.loop(ctx)
	}
	r.stopping = true
	r.stopTimers()
	if err != nil {
		res.Err = err
		r.note("warn", "run error: %v", err)
	}
	if ctx.Err() != nil {
		res.Interrupted = true
	}
	// An Apply that is still running must finish so that its fault can be
	// healed.
	r.drain(r.o.RollbackTimeout)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.RollbackTimeout)
	res.RolledBack = r.rollback(rctx)
	cancel()
	close(r.stop)

	r.data.now = r.clk.Now()
	r.data.ended = true
	r.verdicts = evaluate(sc, &r.data)
	r.finished = true
	r.publish()
	res.Verdicts = r.verdicts
	res.Lags = append([]time.Duration(nil), r.lags...)
	res.Lag = lagStats(res.Lags)
	res.Passed = res.Err == nil && !res.Interrupted
	for _, v := range res.Verdicts {
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

func (r *run) setup(ctx context.Context) error {
	info, err := r.b.Storage.Setup(ctx)
	if err != nil {
		return fmt.Errorf("setting up storage: %w", err)
	}
	r.info = info
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

func (r *run) write(rec journal.Record) {
	if r.o.Journal == nil {
		return
	}
	if rec.Time.IsZero() {
		rec.Time = r.clk.Now()
	}
	if err := r.o.Journal.Write(rec); err != nil && r.journalErr == nil {
		r.journalErr = err
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
