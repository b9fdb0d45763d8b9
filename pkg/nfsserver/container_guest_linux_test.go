//go:build linux && podmanguest

// This file needs rootful podman with netavark (both firewall drivers) and
// a kernel with knfsd and the NFS client, which the host and CI machines
// lack: it is built only with -tags podmanguest, into a test binary that
// runs in the trixie lab VM (cmd/nfslab's TestVMShapeDelay boots it):
//
//	CGO_ENABLED=0 go test -tags "$TAGS podmanguest" -c -o nfsserver.test ./pkg/nfsserver
//	nfslab vm run --guest trixie --smoke-only --test-binary 'nfsserver.test=^TestContainerServerReal$'

package nfsserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/container/podman"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

// nsHost is the real host whose connection checks run in a namespace: the
// published port lives in the test's namespace, with podman's DNAT.
type nsHost struct {
	nfsserver.Host
	ns string
}

func (h nsHost) DialTCP(_ context.Context, ap netip.AddrPort) error {
	errno, err := testnet.Dial(h.ns, ap, 2*time.Second)
	if err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// TestContainerServerReal is the workshop's set-up for real: nfslab's own
// NFS server image (imported from this machine's nfs-kernel-server, no
// registry) run by podman with --privileged -p 2049:2049, knfsd in the
// container's namespace, and the client mounting localhost:/ through
// podman's DNAT, with netavark's iptables and nftables firewall drivers,
// each in a namespace the test makes. The workshop's drop on localhost
// counts 0 packets while writes go on, the diagnosis names podman's rule,
// --match-original makes fsync fail with EIO, and after heal the mount
// works again.
func TestContainerServerReal(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "podman", "nsenter", "rpc.nfsd", "exportfs", "rpc.mountd")
	for _, driver := range []string{"iptables", "nftables"} {
		t.Run(driver, func(t *testing.T) { testContainerServer(t, driver) })
	}
}

func testContainerServer(t *testing.T, driver string) {
	ctx := context.Background()
	lab := testnet.NewPodmanLab(t, "nfslt-cs", driver)
	ns, dir := lab.NS, lab.Dir
	log, err := os.Create(filepath.Join(dir, "service.log"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := podman.StartService(ctx, podman.ServiceOptions{
		Socket: filepath.Join(dir, "podman.sock"), Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "runroot"), TmpDir: filepath.Join(dir, "tmp"),
		StorageDriver: "vfs", Log: log, ReadyTimeout: time.Minute,
		Wrap: lab.Nsenter(), Env: lab.Env,
	})
	if err != nil {
		t.Fatalf("podman service with firewall driver %s: %v", driver, err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Errorf("stopping podman service: %v", err)
		}
		if b, _ := os.ReadFile(log.Name()); t.Failed() {
			t.Logf("podman service log:\n%s", b)
		}
	})
	rt, err := podman.Connect(ctx, svc.URI)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := rt.Version(ctx); err == nil {
		t.Logf("podman %s, netavark firewall driver %s", v, driver)
	}
	srv, err := nfsserver.NewContainer(nfsserver.ContainerConfig{
		Spec:         container.NFSServerSpec{ExportDir: filepath.Join(dir, "export"), RunID: "guest-test"},
		ReadyTimeout: 3 * time.Minute,
	}, rt, nsHost{Host: nfsserver.NewHost(), ns: ns})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ep, err := srv.Start(ctx)
	if err != nil && strings.Contains(err.Error(), "nftables support presently not available") {
		privtest.Skip(t, "this netavark has no nftables driver (podman 5 with netavark >= 1.9 has): "+err.Error())
	}
	if err != nil {
		t.Fatalf("starting the server container: %v", err)
	}
	t.Logf("server container up and answering on %s in %s", ep.Source(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("stopping the server: %v", err)
		}
		if l, _ := container.ListOwned(context.Background(), rt, ""); len(l) != 0 {
			t.Errorf("containers left: %+v", l)
		}
	})

	// The workshop's mount: localhost:/ with its options, from inside the
	// namespace (the NFS client's transport lives in the mounting
	// thread's namespace).
	target := filepath.Join(dir, "mnt")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := mount.ParseNFSOptions("proto=tcp,port=2049,soft,timeo=10,retrans=2")
	if err != nil {
		t.Fatal(err)
	}
	err = testnet.Do(ns, func() error {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		ro, err := mount.ResolveNFS(mctx, mount.NetResolver{}, ep.Source(), o)
		if err != nil {
			return err
		}
		// The server's grace (10 s) may refuse the first mount with EIO.
		for {
			err = unix.Mount(ep.Source(), target, ro.FSType(), 0, strings.Join(ro.Elements(), ","))
			if err == nil || !errors.Is(err, syscall.EIO) || mctx.Err() != nil {
				break
			}
			time.Sleep(2 * time.Second)
		}
		if err != nil {
			return fmt.Errorf("mount(2) -t %s -o %s %s %s: %w", ro.FSType(), strings.Join(ro.Elements(), ","), ep.Source(), target, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("mounting %s: %v", ep.Source(), err)
	}
	t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_FORCE|unix.MNT_DETACH) })
	write := func(name string, bound time.Duration) error {
		return mount.WithTimeout(ctx, bound, func() error {
			f, err := os.Create(filepath.Join(target, name))
			if err != nil {
				return err
			}
			if _, err := f.WriteString("journal segment " + name); err != nil {
				f.Close()
				return err
			}
			return errors.Join(f.Sync(), f.Close())
		})
	}
	if err := write("before", time.Minute); err != nil {
		t.Fatalf("writing through the container server: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, "export", "before"))
	if err != nil {
		t.Fatalf("the write did not reach the export: %v", err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 65534 {
		t.Errorf("file owned by uid %d, want 65534: the workshop's export squashes root", uid)
	}

	m, err := netfault.NewManager(netfault.Options{StateDir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := m.HealAll(context.Background(), ns); err != nil {
			t.Errorf("final heal: %v", err)
		}
	})
	// The workshop's rule: -A OUTPUT -p tcp --dport 2049 -d localhost -j DROP.
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049, Netns: ns, For: 5 * time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := write("pitfall", time.Minute); err != nil {
		t.Fatalf("the workshop's drop bit (%v): the pitfall is not reproduced", err)
	}
	v, err := netfault.Verify(ctx, m, clock.Real{}, ns, f.ID, 500*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if v.Bit || v.Packets != 0 {
		t.Fatalf("the workshop's drop counted %d packets", v.Packets)
	}
	named := false
	for _, fd := range v.Findings {
		t.Logf("%s: %s\n  fix: %s", fd.Cause, fd.Detail, fd.Fix)
		if fd.Cause == netfault.CauseNATBeforeFilter && (strings.Contains(fd.Detail, "NETAVARK-DN-") || strings.Contains(fd.Detail, "table inet netavark")) {
			named = true
		}
	}
	if !named {
		t.Errorf("driver %s: no nat-before-filter finding names podman's DNAT", driver)
	}
	if err := m.Heal(ctx, ns, f.ID); err != nil {
		t.Fatal(err)
	}
	// The fix: the connection's original destination.
	g, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049, MatchOriginal: true, Netns: ns, For: 5 * time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	err = write("during", 3*time.Minute)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("driver %s: with --match-original the soft mount's fsync returned %v, want EIO", driver, err)
	}
	t.Logf("EIO %s after --match-original (soft,timeo=10,retrans=2)", time.Since(cut).Round(time.Millisecond))
	vg, err := netfault.Verify(ctx, m, clock.Real{}, ns, g.ID, 200*time.Millisecond, 100*time.Millisecond)
	if err != nil || vg.Packets == 0 {
		t.Errorf("driver %s: --match-original counted %d packets (%v)", driver, vg.Packets, err)
	}
	if err := m.Heal(ctx, ns, g.ID); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	if err := write("after", 3*time.Minute); err != nil {
		t.Fatalf("driver %s: no recovery after heal: %v", driver, err)
	}
	t.Logf("recovered: a write and fsync went through %s after heal", time.Since(healed).Round(time.Millisecond))
}
