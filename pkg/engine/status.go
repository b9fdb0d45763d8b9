package engine

import (
	"maps"
	"sort"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
)

// Status is a snapshot of a running scenario for the live view.
type Status struct {
	Scenario string
	Started  bool
	Finished bool
	Elapsed  time.Duration
	Duration time.Duration
	Next     []StepStatus // steps not started yet, by planned offset
	Faults   []FaultStatus
	Load     *journal.LoadSample // the latest sample
	Hits     map[string]int
	Verdicts []Verdict
}

// StepStatus is a step that has not started.
type StepStatus struct {
	ID, Action string
	At         time.Duration // planned offset; -1 for steps waiting on an event
	On         string
}

// FaultStatus is a fault the run created.
type FaultStatus struct {
	Step, ID, Kind string
	Packets, Bytes uint64
	Counted        bool
	Healed         bool
}

// snapshot is a Status the loop published, and when the run started.
type snapshot struct {
	s     Status
	start time.Time
}

// Status returns the latest snapshot; safe to call while Run runs.
func (rn *Runner) Status() Status {
	r := rn.r
	p := r.status.Load()
	s := p.s
	if s.Started {
		s.Elapsed = r.clk.Now().Sub(p.start)
	}
	s.Hits = maps.Clone(p.s.Hits)
	if p.s.Load != nil {
		l := *p.s.Load
		s.Load = &l
	}
	return s
}

// publish makes, on the loop, the snapshot Status returns.
func (r *run) publish() {
	start := r.data.start
	s := Status{Scenario: r.sc.Metadata.Name, Duration: r.sc.Duration.D(), Started: !start.IsZero(), Finished: r.finished,
		Hits: maps.Clone(r.hitCount), Verdicts: append([]Verdict(nil), r.verdicts...)}
	for i := range r.sc.Timeline {
		st := &r.sc.Timeline[i]
		ss := &r.data.steps[i]
		if !ss.started.IsZero() {
			continue
		}
		n := StepStatus{ID: st.ID, Action: st.Action, At: -1, On: st.On}
		if st.At != nil {
			n.At = st.At.D()
		} else if !ss.planned.IsZero() && s.Started {
			n.At = ss.planned.Sub(start)
		}
		s.Next = append(s.Next, n)
	}
	sort.SliceStable(s.Next, func(i, j int) bool {
		a, b := s.Next[i].At, s.Next[j].At
		if a < 0 || b < 0 {
			return b < 0 && a >= 0
		}
		return a < b
	})
	for _, e := range r.data.effects {
		if e.network() || e.kind == "faultfs" {
			s.Faults = append(s.Faults, FaultStatus{Step: e.step, ID: e.id, Kind: e.kind, Packets: e.packets, Bytes: e.bytes, Counted: e.counted, Healed: e.undone})
		}
	}
	if r.lastLoad.Interval != 0 || !r.lastLoad.T.IsZero() {
		l := r.lastLoad
		s.Load = &l
	}
	r.status.Store(&snapshot{s: s, start: start})
}
