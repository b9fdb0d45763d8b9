package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

var t0 = time.Date(2025, 6, 12, 9, 0, 0, 0, time.UTC)

type harness struct {
	t       *testing.T
	clk     *clock.Fake
	faults  *fakeFaults
	storage *fakeStorage
	target  *fakeTarget
	load    *fakeLoad
	j       *memJournal
	runner  *Runner
	done    chan *Result
	cancel  context.CancelFunc
	notes   []Note
	backing Storage // when set, the run's Storage instead of storage
}

func start(t *testing.T, doc string, mod func(*harness, *Options)) *harness {
	t.Helper()
	sc, err := scenario.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clk: clock.NewFake(t0), faults: newFakeFaults(), storage: &fakeStorage{},
		target: newFakeTarget(), load: &fakeLoad{ch: make(chan journal.LoadSample, 64)}, j: &memJournal{}, done: make(chan *Result, 1)}
	o := Options{Clock: h.clk, Journal: h.j, RunID: "t1"}
	if mod != nil {
		mod(h, &o)
	}
	var storage Storage = h.storage
	if h.backing != nil {
		storage = h.backing
	}
	b := Backends{Faults: h.faults, Storage: storage, Target: h.target, Load: h.load, Detector: fakeDetector{}}
	h.runner = New(sc, b, o)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	t.Cleanup(cancel)
	go func() { h.done <- h.runner.Run(ctx) }()
	eventually(t, "timeline timers", func() bool { return h.clk.Waiters() > 0 })
	return h
}

// quiet waits until the engine handled everything sent to it.
func (h *harness) quiet() {
	h.t.Helper()
	eventually(h.t, "engine to settle", func() bool {
		return h.runner.Status().Finished || h.runner.r.pending.Load() == 0
	})
}

// advance moves the fake clock in 100ms steps, letting the engine settle
// after each, and returns the result if the run ended.
func (h *harness) advance(d time.Duration) *Result {
	h.t.Helper()
	for el := time.Duration(0); el < d; el += 100 * time.Millisecond {
		select {
		case r := <-h.done:
			return r
		default:
		}
		h.quiet()
		h.clk.Advance(100 * time.Millisecond)
	}
	h.quiet()
	select {
	case r := <-h.done:
		return r
	case <-time.After(20 * time.Millisecond):
		return nil
	}
}

func (h *harness) wait() *Result {
	h.t.Helper()
	for i := 0; i < 100000; i++ {
		select {
		case r := <-h.done:
			return r
		default:
		}
		h.quiet()
		h.clk.Advance(100 * time.Millisecond)
	}
	h.t.Fatal("run did not end")
	return nil
}

func (h *harness) started(id string) (journal.Step, bool) {
	for _, r := range h.j.of(journal.TypeStepStarted) {
		if r.Step.Name == id {
			return *r.Step, true
		}
	}
	return journal.Step{}, false
}

func (h *harness) assertRolledBack(res *Result) {
	h.t.Helper()
	if n := h.faults.liveCount(); n != 0 {
		h.t.Errorf("%d network faults left after the run", n)
	}
	if n := h.storage.ruleCount(); n != 0 {
		h.t.Errorf("%d faultfs rules left after the run", n)
	}
	if h.storage.teardowns != 1 || h.target.closed != 1 {
		h.t.Errorf("storage torn down %d times, target closed %d times; want 1 and 1", h.storage.teardowns, h.target.closed)
	}
	if ends := h.j.of(journal.TypeRunEnd); len(ends) != 1 {
		h.t.Errorf("%d run-end records", len(ends))
	}
}

const dropDoc = `metadata: {name: drop}
duration: 2m
storage:
  kind: nfs
  server: {kind: netns}
target: {kind: probe}
timeline:
  - id: drop
    at: 10s
    for: 20s
    action: drop
    fault: {dst: $nfs-server}
  - id: after
    on: step-done:drop
    delay: 5s
    action: wait
    for: 1s
expectations:
  - {kind: fault-hits, step: drop}
  - {kind: detector-absent, detector: msync-ioexception, after: drop, within: 40s}
`

func TestOffsetsAutoHealAndStepDone(t *testing.T) {
	h := start(t, dropDoc, func(h *harness, _ *Options) { h.faults.packets = 7 })
	if r := h.advance(9900 * time.Millisecond); r != nil {
		t.Fatalf("ended early: %+v", r)
	}
	if _, ok := h.started("drop"); ok {
		t.Fatal("drop started before 10s")
	}
	h.advance(100 * time.Millisecond)
	st, ok := h.started("drop")
	if !ok {
		t.Fatal("drop not started at 10s")
	}
	if st.Offset != 10*time.Second || st.Lag != 0 || !st.ActualAt.Equal(t0.Add(10*time.Second)) {
		t.Errorf("drop planned %v actual %v lag %v", st.Offset, st.ActualAt, st.Lag)
	}
	if h.faults.liveCount() != 1 {
		t.Fatal("fault not applied")
	}
	applied := h.j.of(journal.TypeFaultApplied)
	if len(applied) != 1 || !strings.Contains(applied[0].Fault.Description, "10.99.0.2 port 2049") || len(applied[0].Fault.Rules) == 0 ||
		!strings.Contains(applied[0].Fault.Rules[0], "nfslab:"+applied[0].Fault.ID) {
		t.Fatalf("fault-applied record %+v", applied)
	}
	h.advance(2 * time.Second)
	if len(h.j.of(journal.TypeFaultCounters)) == 0 {
		t.Error("no counters sampled")
	}
	h.advance(17800 * time.Millisecond) // t=29.9s
	if h.faults.liveCount() != 1 {
		t.Fatal("fault healed before its 20s")
	}
	h.advance(200 * time.Millisecond)
	if h.faults.liveCount() != 0 {
		t.Fatal("fault not healed after its 20s")
	}
	h.advance(4900 * time.Millisecond)
	if _, ok := h.started("after"); ok {
		t.Fatal("after started before step-done+5s")
	}
	h.advance(200 * time.Millisecond)
	st, ok = h.started("after")
	if !ok || st.On != "step-done:drop" {
		t.Fatalf("after not started on step-done+5s: %+v", st)
	}
	res := h.wait()
	if !res.Passed || res.Err != nil {
		t.Fatalf("result %+v", res)
	}
	// detector-absent decides at 10s+40s; the run ends then, early.
	end := h.j.of(journal.TypeRunEnd)[0]
	if got := end.Time.Sub(t0); got < 50*time.Second || got > 52*time.Second {
		t.Errorf("run ended at +%v, want about +50s (when the last verdict was known)", got)
	}
	if res.Lag.N != 2 || res.Lag.Max != 0 {
		t.Errorf("lags %+v", res.Lag)
	}
	h.assertRolledBack(res)
}

const eventDoc = `metadata: {name: ev}
duration: 2m
storage: {kind: faultfs}
target: {kind: probe}
timeline:
  - id: slow
    at: 5s
    action: faultfs-set
    faultfs: {ops: [read], latency: 20ms}
  - id: restart
    at: 8s
    action: restart-target
    drop_cache: true
  - id: block
    on: replay-start
    for: 1m
    action: faultfs-set
    faultfs: {ops: [read], errno: EIO}
expectations:
  - {kind: detector-fires, detector: jvm-sigbus, after: block, within: 1m}
  - {kind: exit-code, exit_code: 134, after: block, within: 1m}
`

func TestEventTriggerAndExit(t *testing.T) {
	h := start(t, eventDoc, nil)
	h.advance(9 * time.Second)
	if h.target.restarts != 1 || h.storage.dropped != 1 {
		t.Fatalf("restart %d, cache drops %d", h.target.restarts, h.storage.dropped)
	}
	if _, ok := h.started("block"); ok {
		t.Fatal("block started before replay-start")
	}
	h.target.events <- Event{Name: "replay-start", Evidence: []string{"replay started"}}
	eventually(t, "block to start", func() bool { _, ok := h.started("block"); return ok })
	h.quiet()
	if h.storage.ruleCount() != 2 {
		t.Fatalf("faultfs rules %d, want 2", h.storage.ruleCount())
	}
	h.advance(3 * time.Second)
	h.target.lines <- Line{Text: "jvm-sigbus"}
	eventually(t, "hit", func() bool { return len(h.j.of(journal.TypeDetectorHit)) == 2 })
	h.target.exits <- Exit{Name: "probe", Code: 134}
	res := h.wait()
	if !res.Passed {
		t.Fatalf("not passed: %+v", res.Verdicts)
	}
	if !strings.Contains(res.Verdicts[1].Detail, "exited with 134") {
		t.Errorf("verdict detail %q", res.Verdicts[1].Detail)
	}
	h.assertRolledBack(res)
}

func TestFailedExpectationFailFastRollsBack(t *testing.T) {
	doc := strings.Replace(eventDoc, "within: 1m}\n  - {kind: exit-code", "within: 5s}\n  - {kind: exit-code", 1)
	h := start(t, doc, func(_ *harness, o *Options) { o.FailFast = true })
	h.advance(9 * time.Second)
	h.target.events <- Event{Name: "replay-start"}
	eventually(t, "block to start", func() bool { _, ok := h.started("block"); return ok })
	res := h.wait()
	if res.Passed || res.Verdicts[0].State != Failed || res.Err != nil {
		t.Fatalf("want a failed verdict: %+v", res)
	}
	if got := h.j.of(journal.TypeRunEnd)[0].Time.Sub(t0); got > 16*time.Second {
		t.Errorf("fail-fast run ended at +%v", got)
	}
	h.assertRolledBack(res)
}

const pauseDoc = `metadata: {name: cancel}
duration: 5m
storage: {kind: faultfs}
target: {kind: zeebe, zeebe: {image: z}}
timeline:
  - id: p
    at: 1s
    action: pause
  - id: f
    at: 2s
    action: faultfs-set
    faultfs: {ops: [fsync], errno: EIO}
  - id: d
    at: 3s
    action: drop
    fault: {dst: 10.0.0.5, port: 2049}
rollbacks:
  - action: restart
expectations:
  - {kind: detector-fires, detector: raft-inactive, within: 4m}
`

func TestCancelRollsBackEverything(t *testing.T) {
	h := start(t, pauseDoc, nil)
	h.advance(4 * time.Second)
	if h.faults.liveCount() != 1 || h.storage.ruleCount() != 1 {
		t.Fatal("faults not applied")
	}
	h.cancel()
	var res *Result
	select {
	case res = <-h.done:
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not end the run")
	}
	if !res.Interrupted || res.Passed {
		t.Fatalf("result %+v", res)
	}
	h.assertRolledBack(res)
	if got := h.target.got(); !slices.Equal(got, []string{"pause:", "unpause:", "restart:"}) {
		t.Errorf("target actions %v, want pause, then unpause and the scenario's restart in the rollback", got)
	}
	if !slices.Contains(res.RolledBack, "fault f1") {
		t.Errorf("rolled back %v", res.RolledBack)
	}
}

func TestStepErrorRollsBack(t *testing.T) {
	doc := strings.Replace(pauseDoc, "    rollbacks", "", 1)
	doc = strings.Replace(doc, "  - id: d\n", "  - id: d0\n    at: 2500ms\n    action: drop\n    fault: {dst: 10.0.0.4}\n  - id: d\n", 1)
	h := start(t, doc, func(h *harness, _ *Options) {
		h.faults.applyErr = map[string]error{"10.0.0.5": errors.New("iptables: resource busy")}
	})
	res := h.wait()
	if res.Err == nil || !strings.Contains(res.Err.Error(), "step d: applying drop to 10.0.0.5: iptables: resource busy") {
		t.Fatalf("err %v", res.Err)
	}
	if res.Passed {
		t.Fatal("passed despite a step error")
	}
	h.assertRolledBack(res)
	if len(h.faults.healed) != 1 {
		t.Errorf("healed %v, want the first drop", h.faults.healed)
	}
}

func TestSetupErrorStillTearsDown(t *testing.T) {
	sc, err := scenario.Decode([]byte(pauseDoc))
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStorage{setupErr: errors.New("mount: no such device")}
	tg := newFakeTarget()
	j := &memJournal{}
	res := Run(context.Background(), sc, Backends{Faults: newFakeFaults(), Storage: st, Target: tg}, Options{Clock: clock.NewFake(t0), Journal: j})
	if res.Err == nil || res.Passed || st.teardowns != 1 || tg.closed != 1 {
		t.Fatalf("res %+v teardowns %d closed %d", res, st.teardowns, tg.closed)
	}
	if !strings.Contains(res.Err.Error(), "setting up storage: mount: no such device") {
		t.Errorf("err %v", res.Err)
	}
}

const hitsDoc = `metadata: {name: pit}
duration: 2m
storage:
  kind: nfs
  server: {kind: container, publish: 127.0.0.1:2049}
target: {kind: probe}
timeline:
  - id: pitfall
    at: 10s
    for: 20s
    action: drop
    fault: {dst: 127.0.0.1}
  - id: first-hit
    on: fault-first-hit:pitfall
    action: wait
    for: 1s
expectations:
  - {kind: fault-no-hits, step: pitfall, cause: nat-before-filter}
`

func TestNoHitsWithFinding(t *testing.T) {
	h := start(t, hitsDoc, func(h *harness, _ *Options) {
		h.faults.findings = []netfault.Finding{{Cause: "nat-before-filter", Detail: "nat OUTPUT DNAT 127.0.0.1:2049 -> 10.99.0.2:2049", Fix: "--match-original"}}
	})
	res := h.wait()
	if !res.Passed {
		t.Fatalf("%+v", res.Verdicts)
	}
	if !strings.Contains(res.Verdicts[0].Detail, "nat-before-filter") {
		t.Errorf("detail %q", res.Verdicts[0].Detail)
	}
	if _, ok := h.started("first-hit"); ok {
		t.Error("fault-first-hit fired for a fault with no packets")
	}
	healed := h.j.of(journal.TypeFaultHealed)
	if len(healed) != 1 || len(healed[0].Fault.Findings) != 1 {
		t.Errorf("healed records %+v", healed)
	}
	h.assertRolledBack(res)
}

func TestFirstHitTriggers(t *testing.T) {
	h := start(t, strings.Replace(hitsDoc, "fault-no-hits, step: pitfall, cause: nat-before-filter}", "fault-hits, step: pitfall}\n  - {kind: detector-absent, detector: jvm-sigbus, within: 1m}", 1), func(h *harness, _ *Options) { h.faults.packets = 3 })
	h.advance(12 * time.Second)
	st, ok := h.started("first-hit")
	if !ok || st.ActualAt.Sub(t0) > 11500*time.Millisecond {
		t.Fatalf("first-hit step %+v (started %v)", st, ok)
	}
	h.cancel()
}

const rateDoc = `metadata: {name: rate}
duration: 2m
storage: {kind: faultfs}
target: {kind: probe}
timeline:
  - id: slow
    at: 30s
    for: 30s
    action: faultfs-set
    faultfs: {ops: [write], latency: 50ms}
expectations:
  - {kind: rate-below, fraction: 0.5, after: slow, settle: 5s, within: 30s, baseline: 20s}
  - {kind: recovery, by: rate, fraction: 0.8, after: slow, within: 20s}
  - {kind: recovery, by: appending, after: slow, within: 20s}
`

func TestRateAndRecovery(t *testing.T) {
	h := start(t, rateDoc, nil)
	for sec := 1; sec <= 120; sec++ {
		r := 1000.0
		if sec > 31 && sec <= 60 {
			r = 100
		}
		if sec > 60 && sec <= 63 {
			r = 0
		}
		h.load.ch <- journal.LoadSample{Interval: time.Second, AppendRate: r}
		eventually(t, "sample", func() bool { return len(h.j.of(journal.TypeLoadSample)) == sec })
		if res := h.advance(time.Second); res != nil {
			if !res.Passed {
				t.Fatalf("%+v", res.Verdicts)
			}
			for _, v := range res.Verdicts {
				t.Log(v.Name, ": ", v.Detail)
			}
			if !strings.Contains(res.Verdicts[1].Detail, "after the heal") {
				t.Errorf("recovery detail %q", res.Verdicts[1].Detail)
			}
			h.assertRolledBack(res)
			return
		}
	}
	t.Fatal("run did not end by 120s")
}

func TestLagStats(t *testing.T) {
	var lags []time.Duration
	for i := 1; i <= 100; i++ {
		lags = append(lags, time.Duration(i)*time.Millisecond)
	}
	s := lagStats(lags)
	if s.P50 != 50*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Fatalf("%+v", s)
	}
}
