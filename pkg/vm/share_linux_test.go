package vm

import (
	"os"
	"path/filepath"
	"testing"
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
