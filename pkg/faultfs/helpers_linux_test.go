package faultfs_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/pkg/faultfs"
	"github.com/nfslab/nfslab/pkg/probe"
)

// needFUSE guards privileged tests: root and /dev/fuse (fail under CI=true).
func needFUSE(t *testing.T) {
	t.Helper()
	privtest.Root(t)
	privtest.FUSE(t)
}

// mountT mounts a faultfs under t.TempDir and unmounts it in cleanup,
// failing the test if the mount is still listed in /proc/self/mountinfo.
func mountT(t *testing.T, opts faultfs.Options) (*faultfs.FS, string, string) {
	t.Helper()
	needFUSE(t)
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := faultfs.Mount(backing, mnt, opts)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := f.Unmount(ctx); err != nil {
			t.Errorf("Unmount: %v", err)
		}
		if mounted(t, mnt) {
			t.Errorf("%s is still mounted after cleanup", mnt)
		}
	})
	return f, backing, mnt
}

// mounted reads /proc/self/mountinfo (never stats the path, which may hang).
func mounted(t *testing.T, mnt string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == mnt {
			return true
		}
	}
	return false
}

var (
	buildOnce sync.Once
	classDir  string
	buildErr  error
)

// probeClasses compiles the probe once per test binary, into a cache shared
// by runs (keyed by the source hash, so a changed source recompiles).
func probeClasses(t *testing.T) string {
	t.Helper()
	privtest.Tools(t, "java", "javac")
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		classDir, buildErr = probe.Build(ctx, "", filepath.Join(os.TempDir(), "nfslab-probe-cache"))
		if buildErr == nil {
			var ok bool
			ok, buildErr = probe.CRC32CIntrinsic(ctx, "")
			if buildErr == nil && !ok {
				t.Log("warning: JVM has no CRC32C intrinsic (no SSE4.2?)")
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("building probe: %v", buildErr)
	}
	return classDir
}

// runProbe runs the probe with a bounded context and logs its lines.
func runProbe(t *testing.T, cfg probe.Config, timeout time.Duration, onLine func(probe.Line)) probe.Result {
	t.Helper()
	cd := probeClasses(t)
	if cfg.ErrorDir == "" {
		cfg.ErrorDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	res, err := probe.Run(ctx, cd, cfg, func(l probe.Line) {
		if onLine != nil {
			onLine(l)
		}
	})
	t.Logf("probe %v exited %d after %v", cfg.Args(), res.ExitCode, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, res.Output())
	}
	return res
}
