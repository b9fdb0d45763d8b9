package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/cleanup"
)

func TestFaultfsBadInputExit2(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "none.sock") // nothing listens: no change is possible
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"faultfs", "set", "--control", sock, "--op", "fsync", "--errno", "EIO", "--prob", "1.5"}, "prob 1.5"},
		{[]string{"faultfs", "set", "--control", sock, "--op", "fsync", "--errno", "EIO", "--prob", "0"}, "prob 0"},
		{[]string{"faultfs", "set", "--control", sock, "--op", "fsync", "--errno", "EBOGUS"}, "EBOGUS"},
		{[]string{"faultfs", "set", "--control", sock, "--op", "frobnicate", "--errno", "EIO"}, "frobnicate"},
		{[]string{"faultfs", "set", "--control", sock, "--op", "read", "--latency", "-1s"}, "latency -1s"},
		{[]string{"faultfs", "set", "--control", sock, "--op", "read"}, "neither errno nor latency"},
		{[]string{"faultfs", "set", "--control", sock, "--op", "read", "--errno", "EIO", "--count", "-3"}, "count -3"},
		{[]string{"faultfs", "set", "--control", sock, "--op", "fsync", "--errno", "EIO", "--offset", "10"}, "offset/length"},
		{[]string{"faultfs", "set", "--op", "fsync", "--errno", "EIO"}, "--name or --control"},
		{[]string{"faultfs", "set", "--name", "../etc", "--op", "fsync", "--errno", "EIO"}, `"../etc"`},
		{[]string{"faultfs", "clear", "--control", sock}, "rule ID or --all"},
		{[]string{"faultfs", "mount", filepath.Join(dir, "missing"), "--control", sock}, "missing"},
		{[]string{"faultfs", "mount", dir, filepath.Join(dir, "m"), "--control", sock, "--keep-cache", "--direct-io"}, "exclude"},
		{[]string{"probe", "run", "--dir", dir, "--segment-size", "12Q"}, `"12Q"`},
		{[]string{"probe", "run", "--dir", dir, "--rate", "-5"}, "rate -5"},
		{[]string{"probe", "run", "--dir", dir, "--segment-size", "100"}, "segment size 100"},
		{[]string{"probe", "run", "--dir", dir, "--replay-only", "--no-replay"}, "exclude"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, stderr, code := runCLI(t, context.Background(), tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %q", code, stderr, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "m")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rejected mount created its mountpoint")
	}
}

// The CLI mounts in the foreground, rules set and cleared by other CLI
// invocations bite, and cancelling (as SIGTERM does) unmounts.
func TestFaultfsCLIEndToEnd(t *testing.T) {
	privtest.Root(t)
	privtest.FUSE(t)
	base := t.TempDir()
	backing, mnt, sock := filepath.Join(base, "b"), filepath.Join(base, "m"), filepath.Join(base, "ctl.sock")
	os.Mkdir(backing, 0o755)
	// Private state: the mount's record goes below this root, not /run/nfslab.
	t.Setenv(RootEnv, filepath.Join(base, "root"))
	records := proctrack.NewStore(cleanup.RootsAt(filepath.Join(base, "root")).Records)
	if err := os.WriteFile(filepath.Join(backing, "x.log"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type ret struct {
		out, errs string
		code      int
	}
	var r ret
	done := make(chan struct{})
	go func() {
		r.out, r.errs, r.code = runCLI(t, ctx, "faultfs", "mount", backing, mnt, "--control", sock)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("mount command did not stop")
		}
		if faultfsMounted(t, mnt) {
			t.Errorf("%s still mounted", mnt)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !faultfsMounted(t, mnt) {
		if time.Now().After(deadline) {
			t.Fatal("not mounted after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A MOUNTPOINT outside the faultfs root is recorded for heal --all.
	if es, err := records.List(); err != nil || len(es) != 1 || es[0].Path != mnt || es[0].Kind != proctrack.KindMount {
		t.Errorf("mount records %+v (%v), want one for %s", es, err, mnt)
	}
	out, errs, code := runCLI(t, context.Background(), "faultfs", "set", "--control", sock, "--op", "open", "--path", "*.log", "--errno", "EACCES")
	if code != 0 || strings.TrimSpace(out) != "r1" {
		t.Fatalf("set: %d %q %q", code, out, errs)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "x.log")); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("read with rule = %v, want EACCES", err)
	}
	out, _, code = runCLI(t, context.Background(), "faultfs", "list", "--control", sock)
	if code != 0 || !strings.Contains(out, "r1") || !strings.Contains(out, "EACCES") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if _, errs, code := runCLI(t, context.Background(), "faultfs", "clear", "--control", sock, "r9"); code != 2 || !strings.Contains(errs, "r9") {
		t.Errorf("clear r9: %d %q", code, errs)
	}
	if _, errs, code := runCLI(t, context.Background(), "faultfs", "clear", "--control", sock, "r1"); code != 0 {
		t.Fatalf("clear: %d %q", code, errs)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "x.log")); err != nil || string(b) != "hi" {
		t.Fatalf("read after clear = %q, %v", b, err)
	}
	cancel()
	select {
	case <-done:
		if r.code != 0 || !strings.Contains(r.out, "unmounted") {
			t.Fatalf("mount command: %d %q %q", r.code, r.out, r.errs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mount command did not stop after cancel")
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind")
	}
	if es, _ := records.List(); len(es) != 0 {
		t.Errorf("mount record left after a clean unmount: %+v", es)
	}
}

func faultfsMounted(t *testing.T, mnt string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == mnt {
			return true
		}
	}
	return false
}
