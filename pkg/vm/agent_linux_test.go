package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/duration"
)

// The agent runs argument lists, records exit codes and leftovers, and
// writes status.json and the console status line.
func TestAgentRunsStepsAndReportsLeftovers(t *testing.T) {
	share := t.TempDir()
	job := Job{Steps: []Step{
		{Name: "ok", Argv: []string{"true"}, Timeout: duration.Duration(10 * time.Second)},
		{Name: "fails", Argv: []string{"false"}, Timeout: duration.Duration(10 * time.Second)},
		{Name: "leaks", Argv: []string{"echo", "hello from the step"}, Timeout: duration.Duration(10 * time.Second)},
		{Name: "hangs", Argv: []string{"sleep", "30"}, Timeout: duration.Duration(300 * time.Millisecond)},
	}}
	b, _ := json.Marshal(job)
	if err := os.WriteFile(filepath.Join(share, JobFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	calls := 0
	snap := func(context.Context) (Snapshot, error) {
		calls++
		s := Snapshot{Mounts: []string{"proc /proc proc"}}
		if calls >= 6 { // after "leaks" (the 6th snapshot) a mount stays
			s.Mounts = append(s.Mounts, "10.214.0.2:/ /mnt/x nfs4")
		}
		return s, nil
	}
	var console bytes.Buffer
	a := Agent{Share: share, Console: &console, Clock: clock.Real{}, Snap: snap, Prime: func(context.Context) {}}
	start := time.Now()
	if err := a.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("the hanging step was not stopped at its timeout")
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
	if !st.Complete || got["ok"].Verdict != Pass || got["fails"].ExitCode != 1 || got["fails"].Verdict != Fail {
		t.Fatalf("status %+v", st)
	}
	if got["leaks"].Verdict != Fail || len(got["leaks"].Leftovers) != 1 || got["leaks"].Leftovers[0] != "mount: 10.214.0.2:/ /mnt/x nfs4" {
		t.Fatalf("leaks: %+v", got["leaks"])
	}
	if got["hangs"].Verdict != Fail || !strings.Contains(got["hangs"].Error, "timed out") {
		t.Fatalf("hangs: %+v", got["hangs"])
	}
	log, _ := os.ReadFile(filepath.Join(share, "logs", "leaks.log"))
	if !strings.Contains(string(log), "hello from the step") || !strings.Contains(console.String(), "[leaks] hello from the step") {
		t.Fatalf("step output not logged: %q / %q", log, console.String())
	}
	c, err := StatusFromConsole(console.Bytes())
	if err != nil || len(c.Steps) != 4 {
		t.Fatalf("console status: %v %+v", err, c)
	}
}

func TestCheckStatic(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary is built like nfslab (CGO_ENABLED=0 in CI): static.
	if os.Getenv("CGO_ENABLED") == "0" {
		if err := CheckStatic(self); err != nil {
			t.Fatalf("static test binary refused: %v", err)
		}
	}
	if err := CheckStatic("/bin/sh"); err == nil {
		t.Fatalf("dynamically linked /bin/sh accepted")
	}
}

func TestLineWriterPrefixesCompleteLines(t *testing.T) {
	var out bytes.Buffer
	var seen []string
	w := &lineWriter{prefix: "vm| ", out: &out, onLine: func(l string) { seen = append(seen, l) }}
	w.Write([]byte("a\r\nb"))
	w.Write([]byte("c\nd"))
	w.Flush()
	if out.String() != "vm| a\nvm| bc\nvm| d\n" || len(seen) != 3 {
		t.Fatalf("got %q %q", out.String(), seen)
	}
}

// A step that fails with exit 1 and leaves nothing is run once more when
// it allows a retry; both attempts are reported and logged. Exit status 2
// (bad input) and a step that left something behind are never retried.
func TestAgentRetriesOnlyRetryableFailures(t *testing.T) {
	share := t.TempDir()
	marker := filepath.Join(share, "ran-once")
	// Fails the first time (exit 1), passes the second.
	flaky := []string{"sh", "-c", `if [ -e "$1" ]; then echo second; else : > "$1"; echo first; exit 1; fi`, "sh", marker}
	job := Job{Steps: []Step{
		{Name: "flaky", Argv: flaky, Timeout: duration.Duration(10 * time.Second), Retries: 1},
		{Name: "badinput", Argv: []string{"sh", "-c", "exit 2"}, Timeout: duration.Duration(10 * time.Second), Retries: 1},
		{Name: "always", Argv: []string{"false"}, Timeout: duration.Duration(10 * time.Second), Retries: 1},
		{Name: "noretry", Argv: []string{"false"}, Timeout: duration.Duration(10 * time.Second)},
	}}
	b, _ := json.Marshal(job)
	if err := os.WriteFile(filepath.Join(share, JobFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	var console bytes.Buffer
	a := Agent{Share: share, Console: &console, Clock: clock.Real{},
		Snap:  func(context.Context) (Snapshot, error) { return Snapshot{}, nil },
		Prime: func(context.Context) {}}
	if err := a.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(share, StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStatus(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Steps {
		runs[r.Name] = len(r.Earlier) + 1
	}
	got := map[string]StepResult{}
	for _, r := range st.Steps {
		got[r.Name] = r
	}
	if f := got["flaky"]; f.Verdict != Pass || len(f.Earlier) != 1 || f.Earlier[0].ExitCode != 1 {
		t.Fatalf("flaky: %+v", f)
	}
	first, _ := os.ReadFile(filepath.Join(share, got["flaky"].Earlier[0].Log))
	second, _ := os.ReadFile(filepath.Join(share, got["flaky"].Log))
	if !strings.Contains(string(first), "first") || !strings.Contains(string(second), "second") {
		t.Fatalf("attempt logs not kept apart: %q / %q", first, second)
	}
	if runs["badinput"] != 1 || got["badinput"].Verdict != Fail {
		t.Fatalf("exit 2 was retried: %+v", got["badinput"])
	}
	if runs["always"] != 2 || got["always"].Verdict != Fail {
		t.Fatalf("always-failing step: %d runs, %+v", runs["always"], got["always"])
	}
	if runs["noretry"] != 1 {
		t.Fatalf("a step without retries ran %d times", runs["noretry"])
	}
	if !strings.Contains(console.String(), "step flaky: attempt 1 failed") {
		t.Fatalf("console does not say the attempt failed: %s", console.String())
	}
	if err := (Job{Steps: []Step{{Name: "x", Argv: []string{"true"}, Timeout: duration.Duration(time.Second), Retries: 9}}}).Validate(); err == nil {
		t.Fatal("retries 9 accepted")
	}
}

// TestExportDirs: every entry of the export root, as a path; no root, none.
func TestExportDirs(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"nfslab-nfsd", "run-x"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got := ExportDirs(root); !slices.Equal(got, []string{root + "/nfslab-nfsd", root + "/run-x"}) {
		t.Errorf("ExportDirs = %q", got)
	}
	if got := ExportDirs(filepath.Join(root, "none")); len(got) != 0 {
		t.Errorf("a missing root gave %q", got)
	}
}
