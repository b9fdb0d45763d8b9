package privtest

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips the test with reason, or fails it under CI.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("privileged test cannot run under CI=true: %s", reason)
	}
	t.Skip(reason)
}

// SkipAlways skips even under CI. Use it only where the brief allows a skip
// in CI (a real Zeebe image, which no registry here serves); the reason is
// printed so the skip is visible.
func SkipAlways(t testing.TB, reason string) {
	t.Helper()
	t.Skip(reason)
}

// Root requires uid 0.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// Tools requires each named executable on PATH.
func Tools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Skip(t, "needs "+n+" on PATH")
		}
	}
}

// FUSE requires /dev/fuse (FUSE mounts also need Root).
func FUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		Skip(t, "needs /dev/fuse")
	}
}

// Short skips privileged tests under -short, except under CI.
func Short(t testing.TB) {
	t.Helper()
	if testing.Short() && !InCI() {
		t.Skip("privileged test skipped with -short")
	}
}
