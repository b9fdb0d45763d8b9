//go:build linux && nfsguest

package nfsserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/mount"
)

// startAndMount starts a netns server with cfg's export settings in test
// namespaces and mounts it soft (timeo=10, retrans=2) from a test
// namespace, the server's HostNetns; cleanup unmounts and stops it. It
// returns the server and the mount point. Unless cfg.AllowLocalIO, the
// server turns LOCALIO off, so that the mount's I/O crosses the veth.
func startAndMount(t *testing.T, cfg NetnsConfig) (*NetnsServer, string) {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "ip", "rpc.nfsd", "rpc.mountd", "exportfs", "nsenter", "unshare")
	ctx := context.Background()
	hostNS := testnet.RandomName("nfslt-cli")
	testnet.NewNetns(t, hostNS)
	dir := t.TempDir()
	cfg.Name, cfg.HostNetns = testnet.RandomName("nfslt-srv"), hostNS
	cfg.StateDir = filepath.Join(dir, "state")
	if cfg.ExportDir == "" {
		cfg.ExportDir = filepath.Join(dir, "export")
	}
	cfg.Threads, cfg.DisableLocalIO = 2, !cfg.AllowLocalIO
	s, err := NewNetns(cfg, NewHost())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("cleanup Stop: %v", err)
		}
	})
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ep, err := s.Start(sctx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	m := mount.NewLinux(mount.LinuxOptions{})
	target := filepath.Join(dir, "mnt")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := mount.ParseNFSOptions(mount.DefaultNFSOptions)
	if err != nil {
		t.Fatal(err)
	}
	o.ClientAddr = s.Config().HostAddr()
	t.Cleanup(func() {
		if ok, _ := m.IsMounted(target); ok {
			if _, err := m.Unmount(context.Background(), target, mount.UnmountOptions{Timeout: 30 * time.Second}); err != nil {
				t.Errorf("cleanup Unmount: %v", err)
			}
		}
	})
	// The NFS client's transport lives in the network namespace of the
	// mounting thread, so mount(2) must run on the thread testnet.Do
	// moved into the client namespace. The Mounter runs mount(2) on a
	// goroutine of its own (for its timeout), which may be any thread
	// (in the guest: "network is unreachable" from the host namespace),
	// so here the options are resolved by pkg/mount and mount(2) is called
	// in place; the test's 2-minute bound still holds the whole test.
	err = testnet.Do(hostNS, func() error {
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		ro, err := mount.ResolveNFS(mctx, mount.NetResolver{}, ep.Source(), o)
		if err != nil {
			return err
		}
		var merr error
		for i := 0; i < 10; i++ { // a fresh server answers EIO during its grace period
			if merr = unix.Mount(ep.Source(), target, ro.FSType(), 0, strings.Join(ro.Elements(), ",")); merr == nil || !errors.Is(merr, unix.EIO) {
				break
			}
			time.Sleep(2 * time.Second)
		}
		if merr != nil {
			return fmt.Errorf("mount(2) -t %s -o %s %s %s: %w", ro.FSType(), strings.Join(ro.Elements(), ","), ep.Source(), target, merr)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("mounting %s: %v", ep.Source(), err)
	}
	return s, target
}

// TestServerFaultsReal switches each server fault on the real knfsd in the
// lab VM, with a real soft NFSv4.2 mount (timeo=10, retrans=2) from a test
// namespace, and measures what the client sees on a file it holds open:
// the stall after a restart (grace period 10 s, lease 15 s), the error of
// a soft mount while knfsd is down, the reclaim after its state was
// expired, and ESTALE after an unexport.
func TestServerFaultsReal(t *testing.T) {
	if !kernelHasNFS() {
		privtest.Skip(t, "this kernel has no NFS client/server; the test runs in the lab VM (Debian guest with nfs-kernel-server)")
	}
	ctx := context.Background()
	s, target := startAndMount(t, NetnsConfig{})
	m := mount.NewLinux(mount.LinuxOptions{})
	f, err := os.OpenFile(filepath.Join(target, "journal"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// commit writes a record and fsyncs it, bounded, and says how long it took.
	n := 0
	commit := func(bound time.Duration) (time.Duration, error) {
		n++
		start := time.Now()
		err := mount.WithTimeout(ctx, bound, func() error {
			if _, err := f.WriteAt([]byte(fmt.Sprintf("record %04d\n", n)), int64(n-1)*12); err != nil {
				return err
			}
			return f.Sync()
		})
		return time.Since(start), err
	}
	if d, err := commit(60 * time.Second); err != nil {
		t.Fatalf("baseline commit: %v", err)
	} else {
		t.Logf("baseline commit: %s", d)
	}
	// 1. Restart at once: the client's state is gone, knfsd is in grace.
	t0 := time.Now()
	if err := s.Fault(ctx, FaultStop, true, FaultTarget{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Fault(ctx, FaultStop, false, FaultTarget{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("restart (rpc.nfsd 0, rpc.nfsd ...) took %s", time.Since(t0))
	d, err := commit(90 * time.Second)
	t.Logf("MEASURED restart: first commit after the restart took %s (stall from the stop %s), err %v", d, time.Since(t0), err)
	if err != nil {
		t.Errorf("commit after a quick restart: %v, want it to wait out the grace period and succeed", err)
	}
	if grace := s.Config().GraceTime + s.Config().LeaseTime + 10*time.Second; d > grace {
		t.Errorf("commit after the restart stalled %s, want within grace+lease+10s = %s", d, grace)
	}
	// 2. knfsd down for 20 s: the soft mount gives up (timeo=10,
	// retrans=2: about 6 s) with an error instead of waiting.
	if err := s.Fault(ctx, FaultStop, true, FaultTarget{}); err != nil {
		t.Fatal(err)
	}
	d, err = commit(60 * time.Second)
	t.Logf("MEASURED knfsd down: commit returned after %s with %v (errno %s)", d, err, errnoName(err))
	if err == nil {
		t.Errorf("commit while knfsd is down succeeded, want the soft mount's error")
	}
	time.Sleep(max(0, 20*time.Second-d))
	if err := s.Fault(ctx, FaultStop, false, FaultTarget{}); err != nil {
		t.Fatal(err)
	}
	var recovered time.Duration
	for start := time.Now(); time.Since(start) < 90*time.Second; {
		if _, err = commit(60 * time.Second); err == nil {
			recovered = time.Since(start)
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("MEASURED after the 20 s outage: commits work again %s after knfsd started (last err %v)", recovered, err)
	if err != nil {
		t.Errorf("no commit within 90 s of knfsd's start: %v", err)
	}
	// 3. Expire the client: knfsd forgets its open; the client reclaims.
	ids, err := s.ExpireClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURED expire: clients %v", ids)
	if len(ids) == 0 {
		t.Error("no client to expire while the test holds a file open")
	}
	d, err = commit(90 * time.Second)
	t.Logf("MEASURED expire: next commit took %s, err %v", d, err)
	if err != nil {
		t.Errorf("commit after the client's state expired: %v, want the client to reclaim", err)
	}
	// 4. Unexport: the handles go stale.
	if err := s.Fault(ctx, FaultUnexport, true, FaultTarget{}); err != nil {
		t.Fatal(err)
	}
	d, err = commit(60 * time.Second)
	var st unix.Stat_t
	serr := mount.WithTimeout(ctx, 30*time.Second, func() error { return unix.Stat(filepath.Join(target, "journal"), &st) })
	t.Logf("MEASURED unexport: commit %s err %v (errno %s); stat err %v (errno %s)", d, err, errnoName(err), serr, errnoName(serr))
	if !errors.Is(err, unix.ESTALE) && !errors.Is(serr, unix.ESTALE) {
		t.Errorf("after unexport: commit %v, stat %v; want ESTALE", err, serr)
	}
	if err := s.Fault(ctx, FaultUnexport, false, FaultTarget{}); err != nil {
		t.Fatal(err)
	}
	d, err = commit(60 * time.Second)
	t.Logf("MEASURED re-export: commit on the old handle %s err %v", d, err)
	serr = mount.WithTimeout(ctx, 30*time.Second, func() error { return unix.Stat(filepath.Join(target, "journal"), &st) })
	if serr != nil {
		t.Errorf("stat after the re-export: %v", serr)
	}
	f.Close()
	if _, err := m.Unmount(ctx, target, mount.UnmountOptions{Timeout: 20 * time.Second}); err != nil {
		t.Errorf("Unmount: %v", err)
	}
}

func errnoName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return "-"
}
