package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

const undoDoc = `metadata: {name: undo}
duration: 5m
storage: {kind: faultfs}
target: {kind: zeebe, zeebe: {image: z}}
timeline:
  - {id: d1, at: 1s, for: 2s, action: drop, fault: {dst: 10.0.0.5}}
  - {id: f1, at: 1s, for: 2s, action: faultfs-set, faultfs: {ops: [fsync], errno: EIO}}
  - {id: p1, at: 1s, for: 2s, action: pause}
  - {id: d2, at: 4s, action: drop, fault: {dst: 10.0.0.6}}
  - {id: f2, at: 4s, action: faultfs-set, faultfs: {ops: [fsync], errno: EIO}}
  - {id: p2, at: 4s, action: pause}
expectations:
  - {kind: detector-fires, detector: raft-inactive, within: 4m}
`

// TestForUndoIsTheRollbackUndo: what the end of a For undoes (d1, f1, p1)
// and what the rollback undoes (d2, f2, p2) leave the same traces: the
// last counters and a diagnosis before a heal, the same healed records,
// one unpause each.
func TestForUndoIsTheRollbackUndo(t *testing.T) {
	h := start(t, undoDoc, func(h *harness, _ *Options) {
		h.faults.findings = []netfault.Finding{{Cause: "no-traffic", Detail: "nothing sent to 10.0.0.x"}}
	})
	h.advance(3500 * time.Millisecond)
	if h.faults.liveCount() != 0 || h.storage.ruleCount() != 0 {
		t.Fatalf("For over: %d faults, %d faultfs rules left", h.faults.liveCount(), h.storage.ruleCount())
	}
	if got := h.target.got(); !slices.Equal(got, []string{"pause:", "unpause:"}) {
		t.Fatalf("target actions at 3.5s %v", got)
	}
	h.advance(time.Second)
	if h.faults.liveCount() != 1 || h.storage.ruleCount() != 1 {
		t.Fatal("d2, f2 not applied")
	}
	h.cancel()
	res := <-h.done
	h.assertRolledBack(res)
	if got := h.target.got(); !slices.Equal(got, []string{"pause:", "unpause:", "pause:", "unpause:"}) {
		t.Errorf("target actions %v, want one unpause for p1's For and one in the rollback for p2", got)
	}
	if !slices.Equal(h.faults.diagnosed, []string{"f1", "f2"}) {
		t.Errorf("diagnosed %v, want both zero-hit faults", h.faults.diagnosed)
	}
	for _, want := range []string{"fault f2", "faultfs t1-f2", "unpaused target"} {
		if !slices.Contains(res.RolledBack, want) {
			t.Errorf("rolled back %v, want %q", res.RolledBack, want)
		}
	}
	if slices.Contains(res.RolledBack, "fault f1") || slices.Contains(res.RolledBack, "faultfs t1-f1") {
		t.Errorf("rolled back %v: d1 and f1 ended with their For", res.RolledBack)
	}
	healed := h.j.of(journal.TypeFaultHealed)
	if len(healed) != 4 {
		t.Fatalf("%d fault-healed records, want 4", len(healed))
	}
	byID := map[string]journal.Fault{}
	for _, r := range healed {
		byID[r.Fault.ID] = *r.Fault
	}
	for _, p := range [][2]string{{"f1", "f2"}, {"t1-f1", "t1-f2"}} {
		a, b := byID[p[0]], byID[p[1]]
		a.ID, b.ID = "", ""
		a.Description = strings.Replace(a.Description, "1", "2", 1)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("healed at the end of For %+v, in the rollback %+v", byID[p[0]], byID[p[1]])
		}
	}
	if f := byID["f2"]; len(f.Findings) != 1 || f.Description != "step d2: 0 packets, 0 bytes" {
		t.Errorf("rollback heal record %+v", f)
	}
}

// TestOneUndoPath swaps a test action into the table: its undo runs for
// the step whose For ended and, in the rollback, for the one whose For
// had not.
func TestOneUndoPath(t *testing.T) {
	var mu sync.Mutex
	var undone []string
	saved := actions[scenario.ActionWait]
	t.Cleanup(func() { actions[scenario.ActionWait] = saved })
	actions[scenario.ActionWait] = action{
		apply: func(_ context.Context, _ *run, st *scenario.Step) (*effect, error) {
			return &effect{action: st.Action, step: st.ID, id: "w-" + st.ID}, nil
		},
		undo: func(_ context.Context, _ *run, e effect) undoOutcome {
			mu.Lock()
			defer mu.Unlock()
			undone = append(undone, e.id)
			return undoOutcome{}
		},
		undoing: "ending", gone: "waited",
	}
	h := start(t, `metadata: {name: one}
duration: 5m
storage: {kind: faultfs}
target: {kind: probe}
timeline:
  - {id: short, at: 1s, for: 1s, action: wait}
  - {id: long, at: 1s, for: 4m, action: wait}
expectations:
  - {kind: detector-fires, detector: jvm-sigbus, within: 4m}
`, nil)
	h.advance(2500 * time.Millisecond)
	mu.Lock()
	got := slices.Clone(undone)
	mu.Unlock()
	if !slices.Equal(got, []string{"w-short"}) {
		t.Fatalf("undone at 2.5s %v, want w-short", got)
	}
	h.cancel()
	res := <-h.done
	if !slices.Equal(undone, []string{"w-short", "w-long"}) {
		t.Errorf("undone %v", undone)
	}
	if !slices.Contains(res.RolledBack, "waited w-long") || slices.Contains(res.RolledBack, "waited w-short") {
		t.Errorf("rolled back %v", res.RolledBack)
	}
}

// TestTimersOnlyWakeTheLoop holds the loop in a journal write and fires
// a step's timer: the timer must return at once without starting the
// step, which starts, once, when the loop is free again.
func TestTimersOnlyWakeTheLoop(t *testing.T) {
	hold, held := make(chan struct{}), make(chan struct{})
	h := start(t, dropDoc, func(h *harness, _ *Options) {
		h.j.gate = func(r journal.Record) {
			if r.Type == journal.TypeLoadSample {
				close(held)
				<-hold
			}
		}
	})
	h.advance(9900 * time.Millisecond)
	h.load.ch <- journal.LoadSample{Interval: time.Second, AppendRate: 1}
	<-held
	fired := make(chan struct{})
	go func() { h.clk.Advance(100 * time.Millisecond); close(fired) }()
	select {
	case <-fired:
	case <-time.After(2 * time.Second):
		close(hold)
		t.Fatal("the timer blocked on the busy loop: it ran the step itself")
	}
	if _, ok := h.started("drop"); ok || h.faults.liveCount() != 0 {
		t.Fatal("drop started while the loop was busy")
	}
	close(hold)
	h.quiet()
	st, ok := h.started("drop")
	if !ok || h.faults.liveCount() != 1 {
		t.Fatal("drop not started once the loop was free")
	}
	if st.Lag != 0 {
		t.Errorf("lag %v with a clock that did not move", st.Lag)
	}
	if n := len(h.j.of(journal.TypeStepStarted)); n != 1 {
		t.Errorf("%d step-started records", n)
	}
	h.cancel()
	h.assertRolledBack(<-h.done)
}

// TestConcurrentTriggersStartOnce sends many events and detector lines
// from many goroutines while others advance the clock: every step starts
// exactly once, on the loop.
func TestConcurrentTriggersStartOnce(t *testing.T) {
	doc := `metadata: {name: many}
duration: 2m
storage: {kind: faultfs}
target: {kind: probe}
timeline:
  - {id: now, on: replay-start, action: faultfs-set, faultfs: {ops: [read], errno: EIO}}
  - {id: later, on: replay-start, delay: 300ms, action: wait, for: 200ms}
  - {id: sigbus, on: jvm-sigbus, action: wait, for: 100ms}
  - {id: chained, on: "step-done:later", action: wait, for: 100ms}
  - {id: timed, at: 500ms, action: wait, for: 100ms}
expectations:
  - {kind: detector-absent, detector: msync-ioexception, within: 1m}
`
	h := start(t, doc, nil)
	const senders, each = 16, 20
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(3)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				h.target.events <- Event{Name: "replay-start"}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				h.target.lines <- Line{Text: "jvm-sigbus"}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				h.clk.Advance(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	eventually(t, "every hit", func() bool { return len(h.j.of(journal.TypeDetectorHit)) == 2*senders*each })
	res := h.advance(2 * time.Second)
	if res == nil {
		h.cancel()
		res = <-h.done
	}
	n := map[string]int{}
	for _, r := range h.j.of(journal.TypeStepStarted) {
		n[r.Step.Name]++
	}
	for _, id := range []string{"now", "later", "sigbus", "chained", "timed"} {
		if n[id] != 1 {
			t.Errorf("step %s started %d times, want once", id, n[id])
		}
	}
	if res.Lag.N != 5 {
		t.Errorf("%d lags, want 5", res.Lag.N)
	}
	h.assertRolledBack(res)
}
