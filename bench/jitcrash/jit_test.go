//go:build jitguest

package jitcrash

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/probe"
)

const (
	rounds   = 12              // two JVM pairs (append, then replay) per round
	budget   = 8 * time.Minute // stop starting rounds after this
	jvmLimit = 2 * time.Minute // one JVM
)

func TestJITCrashes(t *testing.T)   { count(t, nil) }
func TestJITCrashesC1(t *testing.T) { count(t, []string{"-XX:TieredStopAtLevel=1"}) }

// count runs the probe as nfslab does (probe.Command) and fails only when a
// JVM could not start: crashes are what it measures.
func count(t *testing.T, jvmArgs []string) {
	share := os.Getenv("NFSLAB_SHARE")
	if share == "" {
		t.Skip("a guest test: run it with nfslab vm run --test-binary (see doc.go)")
	}
	classDir := filepath.Join(share, "probe")
	cpu, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.Lines(string(cpu)) {
		if strings.HasPrefix(line, "model name") {
			t.Logf("cpu: %s", strings.TrimSpace(line))
			break
		}
	}
	var mu sync.Mutex
	runs, crashes := 0, 0
	start := time.Now()
	for r := 0; r < rounds && time.Since(start) < budget; r++ {
		var wg sync.WaitGroup
		for j := range 2 {
			wg.Go(func() {
				dir := t.TempDir()
				for _, mode := range []probe.Mode{probe.ModeAppendOnly, probe.ModeReplayOnly} {
					cfg := probe.Config{Dir: filepath.Join(dir, "journal"), SegmentSize: 16 << 20, Batch: 64, Rate: 2000,
						Mode: mode, JVMArgs: jvmArgs}
					if mode == probe.ModeAppendOnly {
						cfg.Duration = 15 * time.Second
					}
					argv := probe.Command(classDir, dir, cfg)
					ctx, cancel := context.WithTimeout(context.Background(), jvmLimit)
					out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
					cancel()
					hs, _ := filepath.Glob(filepath.Join(dir, "hs_err_pid*.log"))
					mu.Lock()
					runs++
					var exit *exec.ExitError
					switch {
					case err != nil && !errors.As(err, &exit):
						t.Errorf("round %d.%d %s: the JVM did not run: %v", r, j, mode, err)
					case err != nil && len(hs) == 0: // e.g. a replay after a crashed append: not counted
						t.Logf("round %d.%d %s: %v without hs_err: %s", r, j, mode, err, lastLines(string(out), 5))
					}
					for _, h := range hs {
						crashes++
						b, _ := os.ReadFile(h)
						t.Logf("round %d.%d %s: %v\n%s", r, j, mode, err, firstLines(string(b), 14))
						_ = os.Remove(h)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	t.Logf("JITCRASH jvm-args=%q: %d crashes in %d JVM runs, %s", jvmArgs, crashes, runs, time.Since(start).Round(time.Second))
}

func firstLines(s string, n int) string {
	ls := strings.Split(s, "\n")
	return strings.Join(ls[:min(n, len(ls))], "\n")
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}
