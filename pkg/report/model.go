package report

import (
	"sort"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
)

// Report is a whole journal: one or more experiments (iterations).
type Report struct {
	Title       string
	Passed      bool // every experiment passed
	Experiments []*Experiment
}

// Experiment is everything between a run-start and its run-end.
type Experiment struct {
	Run          journal.Run
	Start, End   time.Time
	Result       *journal.End // nil if the journal stops before run-end
	Steps        []*Step
	Faults       []*Fault
	Samples      []journal.LoadSample
	Hits         []journal.Hit
	Expectations []journal.Expectation
	Notes        []journal.Record
}

// Passed reports whether the experiment ended and every expectation held.
func (e *Experiment) Passed() bool {
	if e.Result == nil || !e.Result.Passed {
		return false
	}
	for _, x := range e.Expectations {
		if !x.Held {
			return false
		}
	}
	return true
}

// Step merges the step-planned/started/done records of one step.
type Step struct {
	journal.Step
	Started, Done bool
	DoneAt        time.Time
}

// Fault is a fault's lifetime and last counters.
type Fault struct {
	journal.Fault
	Applied, Healed time.Time
	Counters        journal.FaultCounters
	HasCounters     bool
	// Series of (time, packets) from fault-counters records.
	Packets []Point
}

// Point is one value at a time.
type Point struct {
	T time.Time
	V float64
}

// Window is the time a fault was active, for shading.
func (f *Fault) Window(end time.Time) (time.Time, time.Time) {
	to := f.Healed
	if to.IsZero() {
		to = end
	}
	return f.Applied, to
}

// Build groups records into experiments. Records before the first
// run-start form an experiment of their own, so nothing is lost.
func Build(recs []journal.Record) *Report {
	r := &Report{}
	var cur *Experiment
	steps := map[int]*Step{}
	faults := map[string]*Fault{}
	start := func(t time.Time, run journal.Run) {
		cur = &Experiment{Run: run, Start: t}
		r.Experiments = append(r.Experiments, cur)
		steps = map[int]*Step{}
		faults = map[string]*Fault{}
	}
	for _, rec := range recs {
		if rec.Type == journal.TypeRunStart || cur == nil {
			var run journal.Run
			if rec.Run != nil {
				run = *rec.Run
			}
			start(rec.Time, run)
			if rec.Type == journal.TypeRunStart {
				continue
			}
		}
		if rec.Time.After(cur.End) {
			cur.End = rec.Time
		}
		switch rec.Type {
		case journal.TypeRunEnd:
			if rec.End != nil {
				e := *rec.End
				cur.Result = &e
			}
			cur.End = rec.Time
		case journal.TypeStepPlanned, journal.TypeStepStarted, journal.TypeStepDone:
			if rec.Step == nil {
				continue
			}
			s, ok := steps[rec.Step.Index]
			if !ok {
				s = &Step{}
				steps[rec.Step.Index] = s
				cur.Steps = append(cur.Steps, s)
			}
			merged := *rec.Step
			if merged.ActualAt.IsZero() {
				merged.ActualAt = s.ActualAt
			}
			if merged.Err == "" {
				merged.Err = s.Err
			}
			s.Step = merged
			switch rec.Type {
			case journal.TypeStepStarted:
				s.Started = true
			case journal.TypeStepDone:
				s.Started, s.Done, s.DoneAt = true, true, rec.Time
			}
		case journal.TypeFaultApplied, journal.TypeFaultHealed:
			if rec.Fault == nil {
				continue
			}
			f, ok := faults[rec.Fault.ID]
			if !ok {
				f = &Fault{}
				faults[rec.Fault.ID] = f
				cur.Faults = append(cur.Faults, f)
			}
			prev := f.Fault
			f.Fault = *rec.Fault
			if len(f.Rules) == 0 {
				f.Rules = prev.Rules
			}
			if f.Description == "" {
				f.Description = prev.Description
			}
			if rec.Type == journal.TypeFaultApplied {
				f.Applied = rec.Time
			} else {
				f.Healed = rec.Time
			}
		case journal.TypeFaultCounters:
			if rec.Counters == nil {
				continue
			}
			f, ok := faults[rec.Counters.ID]
			if !ok {
				f = &Fault{Fault: journal.Fault{ID: rec.Counters.ID, Kind: rec.Counters.Kind}}
				faults[rec.Counters.ID] = f
				cur.Faults = append(cur.Faults, f)
			}
			f.Counters, f.HasCounters = *rec.Counters, true
			f.Packets = append(f.Packets, Point{rec.Time, float64(rec.Counters.Packets)})
		case journal.TypeLoadSample:
			if rec.Load != nil {
				cur.Samples = append(cur.Samples, *rec.Load)
			}
		case journal.TypeDetectorHit:
			if rec.Hit != nil {
				h := *rec.Hit
				if h.Time.IsZero() {
					h.Time = rec.Time
				}
				cur.Hits = append(cur.Hits, h)
			}
		case journal.TypeExpectation:
			if rec.Expectation != nil {
				cur.Expectations = append(cur.Expectations, *rec.Expectation)
			}
		default:
			cur.Notes = append(cur.Notes, rec)
		}
	}
	r.Passed = len(r.Experiments) > 0
	for _, e := range r.Experiments {
		sort.SliceStable(e.Steps, func(i, j int) bool { return e.Steps[i].Index < e.Steps[j].Index })
		sort.SliceStable(e.Samples, func(i, j int) bool { return e.Samples[i].T.Before(e.Samples[j].T) })
		for _, f := range e.Faults {
			if f.Applied.IsZero() && len(f.Packets) > 0 {
				f.Applied = f.Packets[0].T
			}
		}
		if !e.Passed() {
			r.Passed = false
		}
		if r.Title == "" {
			r.Title = e.Run.Title
			if r.Title == "" && e.Run.Scenario != "" {
				r.Title = "nfslab: " + e.Run.Scenario
			}
		}
	}
	if r.Title == "" {
		r.Title = "nfslab run"
	}
	return r
}

// Offset formats t relative to the experiment start, like "+1m02.5s".
func (e *Experiment) Offset(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(e.Start)
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	return sign + d.Round(100*time.Millisecond).String()
}
