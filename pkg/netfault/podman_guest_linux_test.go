//go:build linux && podmanguest

// This file needs rootful podman 5 with netavark (both firewall drivers),
// which the host and CI machines lack: it is built only with -tags
// podmanguest, into a test binary that runs in the trixie lab VM:
//
//	CGO_ENABLED=0 go test -tags "$TAGS podmanguest" -c -o netfault.test ./pkg/netfault   # on the host
//	nfslab vm run --guest trixie --smoke-only --test-binary 'netfault.test=^TestPodmanPublishDiagnosedReal$'
//
// cmd/nfslab's TestVMShapeDelay runs it so in every test run.

package netfault_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// listenEnv makes the test binary a TCP server (TestHelperListen): the
// container runs this very binary, so no image is needed.
const listenEnv = "NFSLAB_TEST_LISTEN"

// TestHelperListen is not a test: inside the container it accepts and
// closes connections on $NFSLAB_TEST_LISTEN until killed.
func TestHelperListen(t *testing.T) {
	addr := os.Getenv(listenEnv)
	if addr == "" {
		t.Skip("helper process for TestPodmanPublishDiagnosedReal")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
}

// TestPodmanPublishDiagnosedReal runs the workshop's publish for real:
// rootful podman `-p 2049:2049` with netavark's iptables and nftables
// firewall drivers, each inside a namespace the test creates (podman's
// bridge, its DNAT and its conntrack entries all live there) with podman's
// storage in temporary directories. A drop aimed at 127.0.0.1:2049 counts
// nothing, and the diagnosis names podman's DNAT: the iptables rule with
// the iptables driver, the nft rule in table inet netavark with the
// nftables driver, and conntrack's translation with both.
func TestPodmanPublishDiagnosedReal(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "podman", "ip", "nsenter", "iptables", "nft")
	for _, driver := range []string{"iptables", "nftables"} {
		t.Run(driver, func(t *testing.T) { testPodmanPublish(t, driver) })
	}
}

func testPodmanPublish(t *testing.T, driver string) {
	ctx := context.Background()
	lab := testnet.NewPodmanLab(t, "nfslt-pod", driver)
	ns, dir := lab.NS, lab.Dir
	// The container's root file system: this static test binary.
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"etc", "dev", "proc", "sys", "tmp", "run"} {
		must(t, os.MkdirAll(filepath.Join(rootfs, d), 0o755))
	}
	self, err := os.Executable()
	must(t, err)
	b, err := os.ReadFile(self)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(rootfs, "server"), b, 0o755))
	podman := func(args ...string) (string, error) {
		argv := slices.Concat(lab.Nsenter(), []string{"env"}, lab.Env,
			[]string{"podman", "--storage-driver", "vfs", "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot"), "--tmpdir", filepath.Join(dir, "tmp")}, args)
		out, err := cmdrun.Output(ctx, argv[0], argv[1:]...)
		return strings.TrimSpace(string(out)), err
	}
	// podman's default nofile (1048576) may exceed this machine's hard
	// limit (as pkg/container knows); these fit everywhere.
	id, err := podman("run", "-d", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		"-p", "2049:2049", "-e", listenEnv+"=:2049",
		"--rootfs", rootfs, "/server", "-test.run=^TestHelperListen$")
	if err != nil && strings.Contains(err.Error(), "nftables support presently not available") {
		privtest.Skip(t, "this netavark has no nftables driver (podman 5 with netavark >= 1.9 has; the test runs in the trixie guest): "+err.Error())
	}
	if err != nil {
		t.Fatalf("podman run with firewall driver %s: %v", driver, err)
	}
	t.Cleanup(func() {
		if _, err := podman("rm", "-f", "-t", "0", id); err != nil {
			t.Errorf("removing container: %v", err)
		}
	})
	// The container answers on localhost through podman's DNAT.
	local := netip.MustParseAddrPort("127.0.0.1:2049")
	deadline := time.Now().Add(10 * time.Second)
	for {
		errno, err := testnet.Dial(ns, local, time.Second)
		if err == nil && errno == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("127.0.0.1:2049 does not reach the container (driver %s): errno %v err %v\n%s", driver, errno, err,
				testnet.MustExec(t, ns, "nft", "list", "ruleset"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	m, err := netfault.NewManager(netfault.Options{StateDir: filepath.Join(dir, "state")})
	must(t, err)
	t.Cleanup(func() {
		if _, err := m.HealAll(context.Background(), ns); err != nil {
			t.Errorf("final heal: %v", err)
		}
	})
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049, Netns: ns, For: time.Minute}.WithDefaults())
	must(t, err)
	if errno, err := testnet.Dial(ns, local, 2*time.Second); err != nil || errno != 0 {
		t.Fatalf("the workshop's drop bit (errno %v, err %v): the pitfall is not reproduced", errno, err)
	}
	v, err := netfault.Verify(ctx, m, clock.Real{}, ns, f.ID, 500*time.Millisecond, 100*time.Millisecond)
	must(t, err)
	if v.Bit || v.Packets != 0 {
		t.Fatalf("the drop counted %d packets", v.Packets)
	}
	var rules, cts []netfault.Finding
	for _, fd := range v.Findings {
		t.Logf("%s: %s\n  fix: %s", fd.Cause, fd.Detail, fd.Fix)
		if fd.Cause != netfault.CauseNATBeforeFilter {
			continue
		}
		if strings.HasPrefix(fd.Detail, "conntrack") {
			cts = append(cts, fd)
		} else {
			rules = append(rules, fd)
		}
	}
	if len(rules) != 1 {
		t.Fatalf("want podman's DNAT named once, got %d: %+v", len(rules), rules)
	}
	want := "nat rule `-t nat -A NETAVARK-DN-" // the iptables driver
	if driver == "nftables" {
		want = "table inet netavark, chain nv_"
	}
	if !strings.Contains(rules[0].Detail, want) {
		t.Errorf("driver %s: the finding does not name podman's rule (%q): %s", driver, want, rules[0].Detail)
	}
	if len(cts) == 0 || !strings.Contains(cts[0].Detail, "to 127.0.0.1:2049 answered by 10.88.") {
		t.Errorf("driver %s: no conntrack translation to the container: %+v", driver, cts)
	}
	// The fix both findings give bites through podman's DNAT.
	must(t, m.Heal(ctx, ns, f.ID))
	g, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049, MatchOriginal: true, Netns: ns, For: time.Minute}.WithDefaults())
	must(t, err)
	if errno, err := testnet.Dial(ns, local, 1500*time.Millisecond); err != nil || errno != unix.ETIMEDOUT {
		t.Errorf("driver %s: --match-original drop did not bite: errno %v err %v", driver, errno, err)
	}
	if h := faultByID(t, m, ns, g.ID); h.Packets == 0 {
		t.Errorf("driver %s: --match-original counters stayed at 0", driver)
	}
}
