package vm

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/proctrack"
)

func TestCollectRunsMovesEachRunDir(t *testing.T) {
	share, out := t.TempDir(), filepath.Join(t.TempDir(), "runs")
	for _, f := range []string{"runs/nfs-full-drop-20260101T000000.000Z/journal.jsonl", "runs/nfs-full-drop-20260101T000000.000Z/logs/probe.log", "runs/vm-smoke-full-drop-x/report.md"} {
		p := filepath.Join(share, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := CollectRuns(share, out)
	if err != nil || len(got) != 2 {
		t.Fatalf("CollectRuns: %v %v", got, err)
	}
	b, err := os.ReadFile(filepath.Join(out, "nfs-full-drop-20260101T000000.000Z", "logs", "probe.log"))
	if err != nil || string(b) != "runs/nfs-full-drop-20260101T000000.000Z/logs/probe.log" {
		t.Fatalf("moved content: %q %v", b, err)
	}
	if got, err := CollectRuns(t.TempDir(), out); err != nil || len(got) != 0 {
		t.Fatalf("no runs dir: %v %v", got, err)
	}
}

func TestCopyTreeKeepsModes(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	if err := os.MkdirAll(filepath.Join(src, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a", "b", "x.test"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dst, "a", "b", "x.test"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("copied file: %v %v", st, err)
	}
	if err := copyTree(filepath.Join(src, "missing"), dst); err == nil {
		t.Fatal("missing source accepted")
	}
}

// A work dir goes when its recorded owner is gone, whatever its age; one
// with a live owner stays, however old; one without a record (kept with
// --keep, or from before the record) goes by age.
func TestSweepWorkRemovesOnlyOrphanedWorkDirs(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"run-old", "shell-old", "run-new", "keep-old"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	live, err := MakeWork(dir, "run-")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := MakeWork(dir, "run-")
	if err != nil {
		t.Fatal(err)
	}
	// PID_MAX_LIMIT is 2^22: no process has this PID.
	if err := os.WriteFile(filepath.Join(dead, workOwner), []byte(`{"pid":4194305,"start":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	for _, d := range []string{"run-old", "shell-old", "keep-old", filepath.Base(live)} {
		if err := os.Chtimes(filepath.Join(dir, d), old, old); err != nil {
			t.Fatal(err)
		}
	}
	got, err := SweepWork(dir, 24*time.Hour, time.Now(), proctrack.Linux{})
	if err != nil || len(got) != 3 {
		t.Fatalf("swept %v %v", got, err)
	}
	for d, want := range map[string]bool{"run-old": false, "shell-old": false, "run-new": true, "keep-old": true,
		filepath.Base(live): true, filepath.Base(dead): false} {
		if _, err := os.Stat(filepath.Join(dir, d)); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", d, err == nil, want)
		}
	}
}
