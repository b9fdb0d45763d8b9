package engine

import (
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

// Status returns a snapshot; safe to call while Run runs.
func (rn *Runner) Status() Status {
	r := rn.r
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{Scenario: r.sc.Metadata.Name, Duration: r.sc.Duration.D(), Started: !r.start.IsZero(), Finished: r.finished,
		Hits: map[string]int{}, Verdicts: append([]Verdict(nil), r.verdicts...)}
	if s.Started {
		s.Elapsed = r.clk.Now().Sub(r.start)
	}
	for i := range r.sc.Timeline {
		st := &r.sc.Timeline[i]
		if i < len(r.steps) && !r.steps[i].started.IsZero() {
			continue
		}
		ss := StepStatus{ID: st.ID, Action: st.Action, At: -1, On: st.On}
		if st.At != nil {
			ss.At = st.At.D()
		} else if i < len(r.steps) && !r.steps[i].planned.IsZero() && !r.start.IsZero() {
			ss.At = r.steps[i].planned.Sub(r.start)
		}
		s.Next = append(s.Next, ss)
	}
	sort.SliceStable(s.Next, func(i, j int) bool {
		a, b := s.Next[i].At, s.Next[j].At
		if a < 0 || b < 0 {
			return b < 0 && a >= 0
		}
		return a < b
	})
	for _, f := range r.faults {
		s.Faults = append(s.Faults, FaultStatus{Step: f.step, ID: f.id, Kind: f.kind, Packets: f.packets, Bytes: f.bytes, Counted: f.counted, Healed: f.healed})
	}
	if r.lastLoad.Interval != 0 || !r.lastLoad.T.IsZero() {
		l := r.lastLoad
		s.Load = &l
	}
	for k, v := range r.hitCount {
		s.Hits[k] = v
	}
	return s
}
