package faultfs_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/faultfs"
	"github.com/nfslab/nfslab/pkg/probe"
)

const msyncEIO = "java.io.IOException: Input/output error (msync with parameter MS_SYNC failed)"

// Control: without a fault the probe appends and replays every record, so
// the failures below are the faults' doing.
func TestProbeCleanWithoutFaults(t *testing.T) {
	f, _, mnt := mountT(t, faultfs.Options{})
	dir := filepath.Join(mnt, "journal")
	start := time.Now()
	res := runProbe(t, probe.Config{Dir: dir, SegmentSize: 1 << 20, Records: 3000, Batch: 50, Mode: probe.ModeAppendOnly}, time.Minute, nil)
	if res.ExitCode != 0 || !res.Contains("probe: append done records=3000 segments=3") {
		t.Fatalf("append: exit %d\n%s", res.ExitCode, res.Output())
	}
	res = runProbe(t, probe.Config{Dir: dir, SegmentSize: 1 << 20, Mode: probe.ModeReplayOnly}, time.Minute, nil)
	if res.ExitCode != 0 || !res.Contains("probe: replay done segments=3 records=3000") || res.HsErr != "" {
		t.Fatalf("replay: exit %d hs_err %q\n%s", res.ExitCode, res.HsErr, res.Output())
	}
	if len(f.Rules()) != 0 {
		t.Fatal("rules present")
	}
	t.Logf("append+replay of 3000 records through faultfs: %v", time.Since(start).Round(time.Millisecond))
}

// EIO on fsync, set while the probe appends: force() fails with the JVM's
// own msync IOException and the probe stops.
func TestForceFailsWithMsyncEIO(t *testing.T) {
	for _, c := range []struct {
		name string
		op   faultfs.Op
		opts faultfs.Options
	}{
		{"fsync", faultfs.OpFsync, faultfs.Options{}},
		{"writeback-write", faultfs.OpWrite, faultfs.Options{}},
		{"writeback-write-wbcache", faultfs.OpWrite, faultfs.Options{Writeback: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, _, mnt := mountT(t, c.opts)
			var set atomic.Bool
			var setAt time.Time
			res := runProbe(t, probe.Config{Dir: filepath.Join(mnt, "journal"), SegmentSize: 1 << 20,
				Rate: 2000, Batch: 20, Duration: 20 * time.Second, Mode: probe.ModeAppendOnly}, time.Minute,
				func(l probe.Line) {
					// Appends work first; the fault comes at run time.
					if p, ok := probe.ParseProgress(l.Text); ok && p.Kind == "append" && !set.Swap(true) {
						setAt = time.Now()
						if _, err := f.Set(faultfs.Rule{ID: "eio", Op: c.op, PathGlob: "journal/*.log", Errno: faultfs.Errno(syscall.EIO)}); err != nil {
							t.Error(err)
						}
					}
				})
			if !set.Load() {
				t.Fatalf("probe never reported appending:\n%s", res.Output())
			}
			if res.ExitCode != 1 || !res.Contains(msyncEIO) || !res.Contains("probe: force failed:") ||
				!res.Contains(`Exception in thread "main" java.io.UncheckedIOException`) {
				t.Fatalf("exit %d, want 1 with %q\n%s", res.ExitCode, msyncEIO, res.Output())
			}
			if s := f.Stats(); s[0].Fired == 0 {
				t.Errorf("rule never fired: %+v", s)
			}
			t.Logf("force failed %v after the fault was set", time.Since(setAt).Round(time.Millisecond))
		})
	}
}

// EIO on read of cold pages during replay: the CRC32C stub touches a page
// whose read fails and the JVM dies with SIGBUS. With keep-cache the pages
// an earlier replay read stay cached and the same fault is not seen until
// nfslab drops the cache.
func TestReplaySIGBUSOnColdPages(t *testing.T) {
	f, _, mnt := mountT(t, faultfs.Options{KeepCache: true, AttrTimeout: time.Hour, EntryTimeout: time.Hour})
	dir := filepath.Join(mnt, "journal")
	cfg := probe.Config{Dir: dir, SegmentSize: 1 << 20}
	app := cfg
	app.Records, app.Mode = 3000, probe.ModeAppendOnly
	if res := runProbe(t, app, time.Minute, nil); res.ExitCode != 0 {
		t.Fatalf("append: exit %d\n%s", res.ExitCode, res.Output())
	}
	rep := cfg
	rep.Mode = probe.ModeReplayOnly
	if res := runProbe(t, rep, time.Minute, nil); res.ExitCode != 0 {
		t.Fatalf("warm-up replay: exit %d\n%s", res.ExitCode, res.Output())
	}
	// The second half of segment 2 stops reading. A record header never
	// starts at 512 KiB (records are 1008 bytes from offset 64), so the
	// first code to touch the failing page is CRC32C, as in the seed.
	if _, err := f.Set(faultfs.Rule{ID: "eio", Op: faultfs.OpRead, PathGlob: "journal/journal-2.log",
		Errno: faultfs.Errno(syscall.EIO), Offset: 512 << 10}); err != nil {
		t.Fatal(err)
	}
	res := runProbe(t, rep, time.Minute, nil)
	if res.ExitCode != 0 || f.Stats()[0].Fired != 0 {
		t.Fatalf("cached pages faulted although kept in cache: exit %d stats %+v\n%s", res.ExitCode, f.Stats(), res.Output())
	}
	dropped, err := f.DropCacheGlob("journal/*.log")
	if err != nil || len(dropped) != 3 {
		t.Fatalf("DropCacheGlob = %v, %v", dropped, err)
	}
	start := time.Now()
	res = runProbe(t, rep, time.Minute, nil)
	if res.ExitCode != 134 || res.HsErr == "" {
		t.Fatalf("exit %d hs_err %q, want 134 and a crash report\n%s", res.ExitCode, res.HsErr, res.Output())
	}
	hs, err := os.ReadFile(res.HsErr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SIGBUS", "StubRoutines::updateBytesCRC32C"} {
		if !strings.Contains(string(hs), want) {
			t.Errorf("%s lacks %q", res.HsErr, want)
		}
	}
	if !res.Contains("# A fatal error has been detected by the Java Runtime Environment") || !res.Contains("probe: replay segment=1/3") {
		t.Errorf("output lacks the JVM crash banner or segment 1 progress:\n%s", res.Output())
	}
	t.Logf("replay crashed with SIGBUS %v after start (rule fired %d times)", time.Since(start).Round(time.Millisecond), f.Stats()[0].Fired)
}

// Rules set and cleared over the HTTP API change what programs see.
func TestHTTPRulesChangeBehaviour(t *testing.T) {
	f, _, mnt := mountT(t, faultfs.Options{})
	srv := httptest.NewServer(faultfs.Handler(f))
	defer srv.Close()
	c := &faultfs.Client{HTTP: srv.Client(), Base: srv.URL}
	ctx := context.Background()
	p := filepath.Join(mnt, "data", "x.log")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := c.Set(ctx, faultfs.Rule{Op: faultfs.OpOpen, PathGlob: "data/*.log", Errno: faultfs.Errno(syscall.EACCES)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(p); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("read with open rule = %v, want EACCES", err)
	}
	if _, err := c.Set(ctx, faultfs.Rule{ID: "full", Op: faultfs.OpWrite, Errno: faultfs.Errno(syscall.ENOSPC)}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "y"), []byte("data"), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write with ENOSPC rule = %v", err)
	}
	st, err := c.Stats(ctx)
	if err != nil || len(st) != 2 || st[0].Fired == 0 || st[1].Fired == 0 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
	if err := c.Clear(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "hello" {
		t.Fatalf("read after clear = %q, %v", b, err)
	}
	if _, err := c.ClearAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "y"), []byte("data"), 0o644); err != nil {
		t.Fatalf("write after clear all = %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil || info.Mountpoint != mnt {
		t.Errorf("info = %+v, %v", info, err)
	}
}

// A read blocked in a latency fault (a hung server) does not keep Unmount
// from returning: the blocked operation fails with EIO and the mount goes.
func TestUnmountWhileBlocked(t *testing.T) {
	needFUSE(t)
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "b"), filepath.Join(base, "m")
	os.Mkdir(backing, 0o755)
	os.Mkdir(mnt, 0o755)
	if err := os.WriteFile(filepath.Join(backing, "seg"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := faultfs.Mount(backing, mnt, faultfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Unmount(context.Background())
		if mounted(t, mnt) {
			t.Errorf("%s still mounted", mnt)
		}
	})
	if _, err := f.Set(faultfs.Rule{Op: faultfs.OpRead, Latency: duration.Duration(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cat := exec.Command("cat", filepath.Join(mnt, "seg"))
	cat.Stdout = nil
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	var catErr error
	catDone := make(chan struct{})
	go func() { catErr = cat.Wait(); close(catDone) }()
	t.Cleanup(func() {
		select {
		case <-catDone:
		default:
			cat.Process.Kill() // our own child, by PID
			<-catDone
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for f.Stats()[0].Blocked == 0 {
		if time.Now().After(deadline) {
			t.Fatal("read never blocked")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := f.Unmount(ctx); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("Unmount took %v", took)
	}
	if mounted(t, mnt) {
		t.Fatalf("%s still mounted", mnt)
	}
	select {
	case <-catDone:
		if catErr == nil {
			t.Errorf("cat succeeded although its read was failed")
		}
	case <-time.After(5 * time.Second):
		t.Errorf("cat still blocked 5s after unmount")
	}
	t.Logf("unmount with a read blocked in a 1h latency took %v", took.Round(time.Millisecond))
}

// direct_io makes the journal unusable: shared writable mappings fail.
func TestDirectIOBreaksMap(t *testing.T) {
	_, _, mnt := mountT(t, faultfs.Options{DirectIO: true})
	res := runProbe(t, probe.Config{Dir: filepath.Join(mnt, "journal"), SegmentSize: 1 << 20, Records: 100, Mode: probe.ModeAppendOnly}, time.Minute, nil)
	if res.ExitCode == 0 {
		t.Fatalf("probe mapped a direct_io file:\n%s", res.Output())
	}
	t.Logf("direct_io: exit %d: %s", res.ExitCode, firstException(res.Output()))
}

func firstException(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "Exception") || strings.Contains(l, "Error") {
			return l
		}
	}
	return ""
}
