package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
)

// RunAll boots once per job, side by side (each boot waits until every
// boot has started), in its own work dir; a killed run's work dir is
// swept; the probe is compiled once; the vm dirs of boots ending in the
// same second differ; the summaries come in the jobs' order; a failed
// step in one boot fails the whole, naming the boot.
func TestRunAllBootsSideBySide(t *testing.T) {
	jobs := []Job{
		{Steps: []Step{{Name: "a", Argv: []string{"nfslab", "a"}, Timeout: duration.Duration(time.Minute)}}},
		{Steps: []Step{{Name: "b", Argv: []string{"nfslab", "b"}, Timeout: duration.Duration(time.Minute)},
			{Name: "c", Argv: []string{"nfslab", "c"}, Timeout: duration.Duration(time.Minute)}}},
	}
	var started sync.WaitGroup
	started.Add(len(jobs))
	var mu sync.Mutex
	works := map[string]bool{}
	boot := func(_ context.Context, in Input) (Result, error) {
		started.Done()
		done := make(chan struct{})
		go func() { started.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the boots did not run side by side")
		}
		mu.Lock()
		works[in.WorkDir] = true
		mu.Unlock()
		share := ShareDir(in.WorkDir)
		var st Status
		for _, s := range in.Job.Steps {
			r := StepResult{Name: s.Name, Verdict: Pass, Duration: duration.Duration(time.Minute)}
			if s.Name == "c" {
				r.Verdict, r.ExitCode = Fail, 1
			}
			st.Steps = append(st.Steps, r)
		}
		st.Complete = true
		if err := os.MkdirAll(share, 0o755); err != nil {
			t.Error(err)
		}
		return Result{ShareDir: share, Status: st, Total: time.Minute}, nil
	}
	var builds atomic.Int32
	probeDir := t.TempDir()
	out := filepath.Join(t.TempDir(), "runs")
	var console bytes.Buffer
	imageDir := t.TempDir()
	stale := filepath.Join(imageDir, "run-killed") // a killed run's, two days old, no owner
	if err := os.Mkdir(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	h := Host{Session: Session{Image: Image{Dir: imageDir}, Console: &console}, Out: out, Boot: boot,
		BuildProbe: func(context.Context) (string, error) { builds.Add(1); return probeDir, nil }}
	var w bytes.Buffer
	err := h.RunAll(context.Background(), jobs, &w)
	if !errors.Is(err, ErrStepsFailed) || !strings.Contains(err.Error(), "boot 2 of 2: 1 of 2 failed in the lab VM: c") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the killed run's work dir was not swept: %v", err)
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("probe compiled %d times", n)
	}
	if len(works) != 2 {
		t.Errorf("work dirs %v", works)
	}
	if vmDirs, _ := filepath.Glob(filepath.Join(out, "vm-*")); len(vmDirs) != 2 {
		t.Errorf("vm dirs %v", vmDirs)
	}
	sum := w.String()
	i1, i2 := strings.Index(sum, "vm: boot 1 of 2: a\n"), strings.Index(sum, "vm: boot 2 of 2: b, c\n")
	if i1 < 0 || i2 < i1 || !strings.Contains(sum[i1:i2], "PASS a (1m0s)") || !strings.Contains(sum[i2:], "FAIL c (1m0s)") {
		t.Errorf("summary:\n%s", sum)
	}
}
