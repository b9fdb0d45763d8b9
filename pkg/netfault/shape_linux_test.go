package netfault_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Privileged tests of limit faults on this host (htb, u32, mirred, ifb and
// xt_CLASSIFY exist here; netem does not: delay faults are tested in the
// lab VM guest, shape_guest_test.go).

// sink counts the bytes TCP connections to addr deliver in ns.
type sink struct {
	Addr  netip.AddrPort
	bytes atomic.Int64
}

func newSink(t *testing.T, ns string, addr netip.AddrPort) *sink {
	t.Helper()
	s := &sink{}
	var ln net.Listener
	if err := testnet.Do(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Addr = netip.MustParseAddrPort(ln.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					s.bytes.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return s
}

// send writes to addr from ns for d and returns the bytes the sink got in
// that time, as bits per second.
func throughput(t *testing.T, ns string, s *sink, d time.Duration) float64 {
	t.Helper()
	var c net.Conn
	if err := testnet.Do(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", s.Addr.String(), 2*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := s.bytes.Load()
	start := time.Now()
	_ = c.SetWriteDeadline(start.Add(d))
	buf := make([]byte, 16<<10)
	for time.Since(start) < d {
		if _, err := c.Write(buf); err != nil {
			break
		}
	}
	got := s.bytes.Load() - before
	return float64(got) * 8 / time.Since(start).Seconds()
}

// nothingShaped fails if any of nfslab's shaping objects remain in ns.
func nothingShaped(t *testing.T, ns, dev string) {
	t.Helper()
	if out := testnet.MustExec(t, ns, "tc", "qdisc", "show"); strings.Contains(out, "7f73:") || strings.Contains(out, "ingress") || strings.Contains(out, "7e0") {
		t.Fatalf("qdiscs left:\n%s", out)
	}
	if out := testnet.MustExec(t, ns, "ip", "link", "show"); strings.Contains(out, netfault.IfbPrefix) {
		t.Fatalf("ifb devices left:\n%s", out)
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		if out := testnet.MustExec(t, ns, cmd); strings.Contains(out, "NFSLAB") || strings.Contains(out, "nfslab") {
			t.Fatalf("%s still shows nfslab objects:\n%s", cmd, out)
		}
	}
	if out := testnet.MustExec(t, ns, "tc", "qdisc", "show", "dev", dev); !strings.Contains(out, "noqueue") {
		t.Fatalf("root of %s not restored to noqueue:\n%s", dev, out)
	}
}

// TestKernelLimitOut bounds what the client sends to the server's port
// 2049; the class counters prove it, heal restores the root.
func TestKernelLimitOut(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	s := newSink(t, p.Server, netip.AddrPortFrom(p.ServerV4, 2049))
	from := p.Client
	spec := netfault.Spec{Kind: netfault.KindLimit, Dst: p.ServerV4.String(), Port: 2049, Rate: 2_000_000, Netns: p.Client, For: time.Minute}.WithDefaults()
	base := throughput(t, from, s, 700*time.Millisecond)
	t.Logf("without the fault: %.1f Mbit/s", base/1e6)
	f, err := m.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Rules {
		t.Logf("  %s", r)
	}
	if out := testnet.MustExec(t, p.Client, "tc", "class", "show", "dev", p.ClientIf); !strings.Contains(out, "class htb 7f73:1 root") {
		t.Fatalf("no nfslab class:\n%s", out)
	}
	got := throughput(t, from, s, 2*time.Second)
	t.Logf("with limit 2mbit: %.2f Mbit/s", got/1e6)
	if got > 2_000_000*1.15 || got < 2_000_000*0.5 {
		t.Fatalf("throughput %.2f Mbit/s with a 2mbit limit (baseline %.1f)", got/1e6, base/1e6)
	}
	g := faultByID(t, m, p.Client, f.ID)
	if !g.Counted || g.Packets == 0 || g.Spec.Kind != netfault.KindLimit || g.Spec.Rate != 2_000_000 {
		t.Fatalf("listed: %+v", g)
	}
	t.Logf("class counters: %d packets, %d bytes", g.Packets, g.Bytes)
	v, err := netfault.Verify(ctx, m, clock.Real{}, p.Client, f.ID, time.Second, 100*time.Millisecond)
	if err != nil || !v.Bit {
		t.Fatalf("verify: %+v %v", v, err)
	}
	if err := m.Heal(ctx, p.Client, f.ID); err != nil {
		t.Fatal(err)
	}
	nothingShaped(t, p.Client, p.ClientIf)
	if after := throughput(t, from, s, 500*time.Millisecond); after < 20_000_000 {
		t.Fatalf("after heal only %.1f Mbit/s", after/1e6)
	}
}

// TestKernelLimitIn bounds what the server sends from port 2049 to the
// client, through the ingress filter and nfslab's ifb.
func TestKernelLimitIn(t *testing.T) {
	p, _ := kernelSetup(t)
	ctx := context.Background()
	stateDir := t.TempDir()
	m, err := netfault.NewManager(netfault.Options{StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := testnet.Do(p.Server, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(p.ServerV4, 2049).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serve := func(d time.Duration) {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 16<<10)
		start := time.Now()
		_ = c.SetWriteDeadline(start.Add(d))
		for time.Since(start) < d {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}
	measure := func(d time.Duration) float64 {
		go serve(d)
		var c net.Conn
		if err := testnet.Do(p.Client, func() error {
			var err error
			c, err = net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(d))
		n, _ := io.Copy(io.Discard, c)
		return float64(n) * 8 / time.Since(start).Seconds()
	}
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindLimit, Dst: p.ServerV4.String(), Port: 2049, Dir: netfault.DirIn, Rate: 2_000_000, Netns: p.Client, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Rules {
		t.Logf("  %s", r)
	}
	got := measure(2 * time.Second)
	t.Logf("incoming with limit 2mbit: %.2f Mbit/s", got/1e6)
	if got > 2_000_000*1.15 || got < 2_000_000*0.5 {
		t.Fatalf("incoming throughput %.2f Mbit/s with a 2mbit limit", got/1e6)
	}
	g := faultByID(t, m, p.Client, f.ID)
	if g.Packets == 0 || g.Spec.Dir != netfault.DirIn {
		t.Fatalf("listed: %+v", g)
	}
	// A second Manager (the first one crashed; its records in the state
	// directory survive, as /run does) finds and removes it all, the
	// ingress qdisc the first one added included.
	m2, err := netfault.NewManager(netfault.Options{StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := m2.HealAll(ctx, p.Client)
	if err != nil || len(ids) != 1 || ids[0] != f.ID {
		t.Fatalf("heal all without state: %v %v", ids, err)
	}
	nothingShaped(t, p.Client, p.ClientIf)
	if after := measure(500 * time.Millisecond); after < 20_000_000 {
		t.Fatalf("after heal only %.1f Mbit/s", after/1e6)
	}
}

// TestKernelShapeRefusesForeignRoot: a root qdisc the user made (tbf here)
// is named in the refusal and left as it was; nothing of nfslab's is made.
func TestKernelShapeRefusesForeignRoot(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	testnet.MustExec(t, p.Client, "tc", "qdisc", "add", "dev", p.ClientIf, "root", "handle", "1:", "tbf", "rate", "100mbit", "burst", "32kb", "latency", "50ms")
	before := testnet.MustExec(t, p.Client, "tc", "qdisc", "show", "dev", p.ClientIf)
	_, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindLimit, Dst: p.ServerV4.String(), Rate: 1_000_000, Netns: p.Client, For: time.Minute}.WithDefaults())
	if err == nil || !strings.Contains(err.Error(), "tbf") || !strings.Contains(err.Error(), "1:") {
		t.Fatalf("apply over a user's tbf: %v", err)
	}
	if after := testnet.MustExec(t, p.Client, "tc", "qdisc", "show", "dev", p.ClientIf); after != before {
		t.Fatalf("qdiscs changed:\n%s\nwas:\n%s", after, before)
	}
	if out := testnet.MustExec(t, p.Client, "iptables-save", "-t", "mangle"); strings.Contains(out, "NFSLAB") {
		t.Fatalf("mangle changed:\n%s", out)
	}
	fs, err := m.List(ctx, p.Client)
	if err != nil || len(fs) != 0 {
		t.Fatalf("list: %v %v", fs, err)
	}
}

// TestKernelShapeExpiresInKernel: at the expiry the mangle rule stops
// classifying (-m time --datestop) with no nfslab code running, so the
// class counters stop; Sweep then removes everything and restores the root.
func TestKernelShapeExpiresInKernel(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	s := newSink(t, p.Server, netip.AddrPortFrom(p.ServerV4, 2049))
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindLimit, Dst: p.ServerV4.String(), Port: 2049, Rate: 2_000_000, Netns: p.Client, For: 2 * time.Second}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(f.Expires) + 200*time.Millisecond)
	before := faultByID(t, m, p.Client, f.ID).Packets
	got := throughput(t, p.Client, s, 700*time.Millisecond)
	after := faultByID(t, m, p.Client, f.ID).Packets
	if after != before {
		t.Fatalf("class counted %d packets after the expiry", after-before)
	}
	if got < 20_000_000 {
		t.Fatalf("after the expiry only %.1f Mbit/s: still limited", got/1e6)
	}
	ids, err := m.Sweep(ctx, p.Client)
	if err != nil || len(ids) != 1 {
		t.Fatalf("sweep: %v %v", ids, err)
	}
	nothingShaped(t, p.Client, p.ClientIf)
}

// TestKernelShapeZeroHitDiagnosis: a limit with no traffic gets 0 packets
// in its class; Verify says it did not bite and names the missing
// connection. Once another tool replaces the root, the missing class is
// named too.
func TestKernelShapeZeroHitDiagnosis(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindLimit, Dst: p.ServerV4.String(), Port: 2049, Rate: 1_000_000, Netns: p.Client, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	v, err := netfault.Verify(ctx, m, clock.Real{}, p.Client, f.ID, 300*time.Millisecond, 50*time.Millisecond)
	if err != nil || v.Bit || !v.Counted {
		t.Fatalf("verify with no traffic: %+v %v", v, err)
	}
	if len(v.Findings) == 0 || v.Findings[0].Cause != netfault.CauseNoConnection {
		t.Fatalf("findings: %+v", v.Findings)
	}
	testnet.MustExec(t, p.Client, "tc", "qdisc", "replace", "dev", p.ClientIf, "root", "handle", "1:", "tbf", "rate", "100mbit", "burst", "32kb", "latency", "50ms")
	fs, err := m.Diagnose(ctx, p.Client, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range fs {
		found = found || x.Cause == netfault.CauseShapeClassMissing
	}
	if !found {
		t.Fatalf("findings after the root was replaced: %+v", fs)
	}
	if err := m.Heal(ctx, p.Client, f.ID); err != nil {
		t.Fatal(err)
	}
	if out := testnet.MustExec(t, p.Client, "tc", "qdisc", "show", "dev", p.ClientIf); !strings.Contains(out, "tbf 1:") {
		t.Fatalf("the other tool's root was touched:\n%s", out)
	}
}

// Env of the helper process of the SIGKILL tests: it applies the fault
// described there and sleeps until killed.
const (
	envShapeChild = "NFSLAB_TEST_SHAPE_CHILD" // JSON netfault.Spec
	envShapeState = "NFSLAB_TEST_SHAPE_STATE" // state directory
)

// TestShapeChildProcess is not a test: it is the process the SIGKILL tests
// start (this binary, -test.run=^TestShapeChildProcess$) and kill.
func TestShapeChildProcess(t *testing.T) {
	raw := os.Getenv(envShapeChild)
	if raw == "" {
		return // run on its own: nothing to do (not skipped: CI counts skips)
	}
	var spec netfault.Spec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	m, err := netfault.NewManager(netfault.Options{StateDir: os.Getenv(envShapeState)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := m.Apply(context.Background(), spec)
	if err != nil {
		fmt.Println("APPLY-FAILED", err)
		os.Exit(3)
	}
	fmt.Println("APPLIED", f.ID)
	time.Sleep(time.Minute) // until SIGKILL
	os.Exit(4)
}

// shapeSIGKILL starts a process that applies spec, SIGKILLs it once the
// fault is in the kernel, and heals everything as `nfslab heal --all`
// does (a new Manager, the same state directory): no qdisc, class, ifb,
// mangle rule or record may remain, and the root is the default again.
func shapeSIGKILL(t *testing.T, p *testnet.Pair, spec netfault.Spec) {
	t.Helper()
	stateDir := t.TempDir()
	raw, _ := json.Marshal(spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestShapeChildProcess$", "-test.v")
	cmd.Env = append(os.Environ(), envShapeChild+"="+string(raw), envShapeState+"="+stateDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "APPLIED" {
			id = f[1]
			break
		} else if len(f) > 0 && f[0] == "APPLY-FAILED" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the child could not apply: %s", sc.Text())
		}
	}
	if id == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the child never applied its fault")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if q := testnet.MustExec(t, p.Client, "tc", "qdisc", "show"); !strings.Contains(q, "7f73:") {
		t.Fatalf("the killed process's fault is not in the kernel:\n%s", q)
	}
	m, err := netfault.NewManager(netfault.Options{StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := m.HealAll(context.Background(), p.Client)
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("heal --all after SIGKILL: %v %v", ids, err)
	}
	nothingShaped(t, p.Client, p.ClientIf)
	if left, _ := filepath.Glob(filepath.Join(stateDir, "*", "*.json")); len(left) != 0 {
		t.Fatalf("state records left: %v", left)
	}
}

// TestKernelShapeSIGKILL: SIGKILL during a limit (both directions), then
// heal --all: nothing of nfslab's left. The delay version runs in the lab
// VM guest (TestGuestDelaySIGKILL).
func TestKernelShapeSIGKILL(t *testing.T) {
	p, _ := kernelSetup(t)
	shapeSIGKILL(t, p, netfault.Spec{Kind: netfault.KindLimit, Dst: p.ServerV4.String(), Port: 2049, Rate: 1_000_000, Dir: netfault.DirBoth, Netns: p.Client, For: time.Minute}.WithDefaults())
}
