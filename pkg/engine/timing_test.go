package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// TestStepTimingRealClock measures, with the wall clock, how late 100
// steps start relative to their planned offsets (every 30ms for 3s, with
// faultfs rules set and cleared among them), and requires p99 < 10ms. The
// machine is shared (2 cores, other builds running), so one failed
// measurement is repeated once; both are logged.
func TestStepTimingRealClock(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 3.5s of wall time")
	}
	for attempt := 1; ; attempt++ {
		p99 := measureLag(t)
		if p99 < 10*time.Millisecond || raceEnabled {
			return
		}
		if attempt == 2 {
			t.Fatalf("p99 step lag %v, want < 10ms", p99)
		}
	}
}

func measureLag(t *testing.T) time.Duration {
	var b strings.Builder
	b.WriteString("metadata: {name: timing}\nduration: 4s\nstorage: {kind: faultfs}\ntarget: {kind: probe}\ntimeline:\n")
	for i := 1; i <= 100; i++ {
		if i%10 == 0 {
			fmt.Fprintf(&b, "  - {id: s%d, at: %dms, for: 100ms, action: faultfs-set, faultfs: {ops: [fsync], errno: EIO}}\n", i, 30*i)
			continue
		}
		fmt.Fprintf(&b, "  - {id: s%d, at: %dms, action: wait, for: 10ms}\n", i, 30*i)
	}
	b.WriteString("expectations:\n  - {kind: detector-absent, detector: jvm-sigbus, within: 3500ms}\n")
	sc, err := scenario.Decode([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	j := &memJournal{}
	res := Run(context.Background(), sc, Backends{Faults: newFakeFaults(), Storage: &fakeStorage{}, Target: newFakeTarget()},
		Options{Clock: clock.Real{}, Journal: j})
	if !res.Passed {
		t.Fatalf("%+v", res)
	}
	if res.Lag.N != 100 {
		t.Fatalf("%d lags measured, want 100", res.Lag.N)
	}
	t.Logf("step start lag over %d steps: p50 %v p99 %v max %v avg %v (race detector: %v)", res.Lag.N, res.Lag.P50, res.Lag.P99, res.Lag.Max, res.Lag.Avg, raceEnabled)
	// The journal carries the same lags.
	n := 0
	for _, r := range j.of(journal.TypeStepStarted) {
		if r.Step.ActualAt.Sub(r.Step.PlannedAt) != r.Step.Lag {
			t.Errorf("step %s: lag %v != actual-planned", r.Step.Name, r.Step.Lag)
		}
		n++
	}
	if n != 100 {
		t.Errorf("%d step-started records", n)
	}
	return res.Lag.P99
}
