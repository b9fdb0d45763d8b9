package vm

import (
	"reflect"
	"testing"
	"time"
)

// SplitPlan: heaviest first onto the lightest boot, the container
// scenarios kept in one boot with their set-up counted once, each boot in
// the caller's order, the smoke test in the first boot only.
func TestSplitPlan(t *testing.T) {
	min := time.Minute
	costs := map[string]Cost{
		"a-container": {Time: 4 * min, Group: "probe-image", Setup: 4 * min},
		"b":           {Time: 4 * min},
		"c":           {Time: 3 * min},
		"d":           {Time: 2 * min},
		"e-container": {Time: 4 * min, Group: "probe-image", Setup: 4 * min},
		"f":           {Time: 2 * min},
		"g":           {Time: 3 * min},
	}
	cost := func(n string) Cost { return costs[n] }
	o := PlanOptions{Scenarios: []string{"a-container", "b", "c", "d", "e-container", "f", "g"}, Engine: true, CI: true, Smoke: true,
		Crashes: []CrashTrial{{Scenario: "b", After: 10 * time.Second}, {Scenario: "c", After: 5 * time.Second}},
		Tests:   []TestBinary{{Path: "x.test"}}}

	if got := SplitPlan(o, 1, cost); len(got) != 1 || !reflect.DeepEqual(got[0], o) {
		t.Fatalf("one job: %+v", got)
	}
	got := SplitPlan(o, 3, cost)
	// Units, heaviest first: containers 12m, b 4, c 3, g 3, d 2, f 2,
	// x.test 2, the trials 1 each. Boot 1: containers (12); boot 2: b, d,
	// f, trial b (4+2+2+1 = 9); boot 3: c, g, x.test, trial c (3+3+2+1).
	want := []PlanOptions{
		{Scenarios: []string{"a-container", "e-container"}, Engine: true, CI: true, Smoke: true},
		{Scenarios: []string{"b", "d", "f"}, Crashes: []CrashTrial{{Scenario: "b", After: 10 * time.Second}}, Engine: true, CI: true},
		{Scenarios: []string{"c", "g"}, Crashes: []CrashTrial{{Scenario: "c", After: 5 * time.Second}}, Tests: []TestBinary{{Path: "x.test"}}, Engine: true, CI: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("split\n got %+v\nwant %+v", got, want)
	}
	// Everything is planned once.
	seen := map[string]int{}
	for _, p := range SplitPlan(o, 4, cost) {
		for _, s := range p.Scenarios {
			seen[s]++
		}
	}
	for _, s := range o.Scenarios {
		if seen[s] != 1 {
			t.Errorf("%s planned %d times", s, seen[s])
		}
	}
	// Nothing to split: o itself, one boot.
	if got := SplitPlan(PlanOptions{Engine: true}, 3, cost); len(got) != 1 {
		t.Errorf("an empty plan in three boots: %+v", got)
	}
	// More boots than units: the empty ones are dropped.
	if got := SplitPlan(PlanOptions{Scenarios: []string{"b", "c"}, Engine: true}, 5, cost); len(got) != 2 {
		t.Errorf("two scenarios in five boots: %+v", got)
	}
}
