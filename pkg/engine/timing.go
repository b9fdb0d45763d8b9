package engine

import (
	"sort"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
)

// Timers only send the loop a message; the loop starts the step. Each
// deadline is armed from the planned time, not from when it was armed, so
// the journalling before a timer is set does not add to the lag.

// schedule arms the timeline: the steps with an offset, the end of the
// duration, and the first counter sample.
func (r *run) schedule() {
	start := r.data.start
	for i := range r.sc.Timeline {
		st := &r.sc.Timeline[i]
		planned := start // steps waiting on an event are journalled at the start
		if st.At != nil {
			planned = start.Add(st.At.D())
			r.at(planned, msg{kind: mStart, step: i, planned: planned})
		}
		r.write(journal.Record{Time: start, Type: journal.TypeStepPlanned, Step: r.jstep(i, planned, time.Time{})})
	}
	r.at(start.Add(r.sc.Duration.D()), msg{kind: mEnd})
	r.armTick()
}

// at sends m to the loop at t.
func (r *run) at(t time.Time, m msg) { r.after(t.Sub(r.clk.Now()), m) }

// after sends m to the loop after d.
func (r *run) after(d time.Duration, m msg) {
	r.timers = append(r.timers, r.clk.AfterFunc(d, func() { r.send(m) }))
}

// armTick arms the next counter sample, on the SampleEvery grid from the
// start so that sampling does not drift.
func (r *run) armTick() {
	r.ticks++
	next := r.data.start.Add(time.Duration(r.ticks) * r.o.SampleEvery)
	r.tick = r.clk.AfterFunc(next.Sub(r.clk.Now()), func() { r.send(msg{kind: mTick}) })
}

func (r *run) stopTimers() {
	for _, t := range r.timers {
		t.Stop()
	}
	r.timers = nil
	if r.tick != nil {
		r.tick.Stop()
	}
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
