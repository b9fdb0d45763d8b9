package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/duration"
)

// A crash trial kills its command at the crash point (the matching line,
// then After), runs the heal command, and passes only when the kill
// happened, the heal succeeded and nothing was left behind.
func TestAgentCrashTrial(t *testing.T) {
	share := t.TempDir()
	// Prints its trigger line, then would run far past the kill.
	slow := []string{"sh", "-c", "echo setting up; sleep 0.2; echo 'level=INFO msg=\"fault applied\" id=1'; exec sleep 30"}
	healed := filepath.Join(share, "healed")
	heal := []string{"sh", "-c", `: > "$1"`, "sh", healed}
	crash := func(line string, h []string) *Crash {
		return &Crash{AfterLine: line, After: duration.Duration(300 * time.Millisecond), Heal: h}
	}
	job := Job{Steps: []Step{
		{Name: "killed", Argv: slow, Timeout: duration.Duration(20 * time.Second), Crash: crash("fault applied", heal)},
		{Name: "ended-early", Argv: []string{"true"}, Timeout: duration.Duration(20 * time.Second), Crash: crash("fault applied", heal)},
		{Name: "heal-fails", Argv: slow, Timeout: duration.Duration(20 * time.Second), Crash: crash("", []string{"false"})},
		{Name: "left-behind", Argv: slow, Timeout: duration.Duration(20 * time.Second), Crash: crash("fault applied", heal)},
	}}
	b, _ := json.Marshal(job)
	if err := os.WriteFile(filepath.Join(share, JobFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var console bytes.Buffer
	step := 0
	a := Agent{Share: share, Console: &console, Clock: clock.Real{}, Prime: func(context.Context) {},
		Snap: func(context.Context) (Snapshot, error) {
			step++
			// The fourth step's "after" snapshot (the 8th call) finds a
			// process that appeared during it.
			if step == 8 {
				return Snapshot{Processes: []string{"java -jar probe.jar"}}, nil
			}
			return Snapshot{}, nil
		}}
	start := time.Now()
	if err := a.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("the crash trials took %s: the kill did not happen", time.Since(start))
	}
	raw, err := os.ReadFile(filepath.Join(share, StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStatus(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]StepResult{}
	for _, r := range st.Steps {
		got[r.Name] = r
	}
	k := got["killed"]
	if k.Verdict != Pass || k.KilledAfter.D() < 500*time.Millisecond || k.HealExit != 0 {
		t.Fatalf("killed: %+v", k)
	}
	if _, err := os.Stat(healed); err != nil {
		t.Fatalf("heal did not run: %v", err)
	}
	if e := got["ended-early"]; e.Verdict != Fail || e.KilledAfter != 0 || !strings.Contains(e.Error, "before its crash point") {
		t.Fatalf("ended-early: %+v", e)
	}
	if h := got["heal-fails"]; h.Verdict != Fail || h.HealExit != 1 || h.KilledAfter == 0 {
		t.Fatalf("heal-fails: %+v", h)
	}
	if l := got["left-behind"]; l.Verdict != Fail || len(l.Leftovers) == 0 {
		t.Fatalf("left-behind: %+v", l)
	}
	log, _ := os.ReadFile(filepath.Join(share, k.Log))
	if !strings.Contains(string(log), "crash trial: killed after") {
		t.Fatalf("step log does not record the kill: %s", log)
	}
}

func TestCrashStepValidation(t *testing.T) {
	for name, c := range map[string]Crash{
		"no heal":      {After: duration.Duration(time.Second)},
		"past timeout": {After: duration.Duration(time.Hour), Heal: []string{"true"}},
		"bad regexp":   {AfterLine: "(", Heal: []string{"true"}},
	} {
		c := c
		j := Job{Steps: []Step{{Name: "x", Argv: []string{"true"}, Timeout: duration.Duration(time.Minute), Crash: &c}}}
		if err := j.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseCrashTrial(t *testing.T) {
	c, err := ParseCrashTrial("nfs-full-drop@15s")
	if err != nil || c.Scenario != "nfs-full-drop" || c.After != 15*time.Second {
		t.Fatalf("got %+v, %v", c, err)
	}
	for _, bad := range []string{"nfs-full-drop", "@5s", "x@-1s", "x@soon", "x@20m"} {
		if _, err := ParseCrashTrial(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	j := PlanJob(PlanOptions{Engine: true, Crashes: []CrashTrial{c}})
	if len(j.Steps) != 1 || j.Steps[0].Name != "crash-nfs-full-drop" || j.Steps[0].Crash == nil ||
		strings.Join(j.Steps[0].Crash.Heal, " ") != "nfslab heal --all" || j.Steps[0].Retries != 0 {
		t.Fatalf("plan: %+v", j.Steps)
	}
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
}
