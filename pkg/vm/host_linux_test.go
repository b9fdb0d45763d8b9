package vm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
)

// What `vm run` brings back after a boot: run directories under out, the
// status, step logs and console log under out/vm-<stamp>/, and a summary
// line per step with earlier attempts and leftovers; a failed step makes
// the error, naming it.
func TestCollectAndSummary(t *testing.T) {
	work, out := t.TempDir(), filepath.Join(t.TempDir(), "runs")
	share := ShareDir(work)
	for f, content := range map[string]string{
		"runs/nfs-full-drop-20260101T000000.000Z/journal.jsonl": "{}",
		StatusFile:                        `{"steps":[]}`,
		"logs/nfs-full-drop.log":          "step log",
		"logs/nfs-full-drop.attempt1.log": "first attempt",
	} {
		p := filepath.Join(share, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	console := filepath.Join(work, "console.log")
	if err := os.WriteFile(console, []byte("boot"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := Result{ShareDir: share, ConsoleLog: console, Accel: Accel{Name: "tcg", CPU: "max", Opts: "thread=single"},
		BootTime: 12340 * time.Millisecond, Total: 95 * time.Second,
		Status: Status{Steps: []StepResult{
			{Name: "nfs-full-drop", Verdict: Pass, Duration: duration.Duration(61 * time.Second),
				Earlier: []StepResult{{Verdict: Fail, ExitCode: 1, Duration: duration.Duration(30 * time.Second), Log: "logs/nfs-full-drop.attempt1.log"}}},
			{Name: "nfs-random-drop", Verdict: Fail, ExitCode: 1, Error: "expectation failed", Duration: duration.Duration(40 * time.Second),
				Leftovers: []string{"mount: 10.214.0.2:/ /mnt/x nfs4"}},
			{Name: "crash-nfs-full-drop", Verdict: Pass, ExitCode: -1, Duration: duration.Duration(53 * time.Second),
				KilledAfter: duration.Duration(52970 * time.Millisecond)},
		}}}
	now := time.Date(2026, 12, 2, 6, 30, 0, 0, time.UTC)
	c, err := Collect(res, out, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "vm-20261202T063000Z"); c.VMDir != want {
		t.Errorf("vm dir %q, want %q", c.VMDir, want)
	}
	for _, p := range []string{StatusFile, "logs/nfs-full-drop.log", "console.log"} {
		if _, err := os.Stat(filepath.Join(c.VMDir, p)); err != nil {
			t.Errorf("%s not brought back: %v", p, err)
		}
	}
	if len(c.Runs) != 1 || c.Runs[0] != filepath.Join(out, "nfs-full-drop-20260101T000000.000Z") {
		t.Errorf("runs %v", c.Runs)
	}
	var w bytes.Buffer
	WriteSummary(&w, res, c)
	for _, want := range []string{
		"vm: accel tcg (-cpu max, thread=single), boot 12.3s, total 1m35s; console and step logs in " + c.VMDir + "\n",
		"PASS nfs-full-drop (1m1s) on attempt 2\n",
		"    attempt 1: FAIL exit 1 after 30s, log " + filepath.Join(c.VMDir, "logs/nfs-full-drop.attempt1.log") + "\n",
		"FAIL nfs-random-drop (40s) exit 1 expectation failed\n",
		"PASS crash-nfs-full-drop (53s) killed after 53s, heal --all exit 0\n",
		"    left behind: mount: 10.214.0.2:/ /mnt/x nfs4\n",
		"run dir: " + c.Runs[0] + "\n",
	} {
		if !strings.Contains(w.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, w.String())
		}
	}
	err = stepsErr(res.Status)
	if !errors.Is(err, ErrStepsFailed) || err.Error() != "1 of 3 failed in the lab VM: nfs-random-drop" {
		t.Errorf("steps error %v", err)
	}
	if err := stepsErr(Status{Steps: res.Status.Steps[:1]}); err != nil {
		t.Errorf("all passed: %v", err)
	}

	// A guest that never booted wrote nothing: the directory is still made.
	c, err = Collect(Result{ShareDir: filepath.Join(t.TempDir(), "share")}, out, now.Add(time.Second))
	if err != nil || c.VMDir == "" || len(c.Runs) != 0 {
		t.Errorf("empty share: %+v %v", c, err)
	}
}
