package netfault_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// echoServer listens on addr inside ns and echoes what each connection
// sends, holding the connection open: a stand-in for knfsd, whose
// clients stay connected.
func echoServer(t *testing.T, ns string, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	if err := testnet.Do(ns, func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatalf("listening on %v in %s: %v", addr, ns, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// connect opens a TCP connection from inside ns and keeps it.
func connect(t *testing.T, ns string, addr netip.AddrPort) net.Conn {
	t.Helper()
	var c net.Conn
	if err := testnet.Do(ns, func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), 2*time.Second); return err }); err != nil {
		t.Fatalf("connecting to %v from %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// echoes reports whether one round trip over c completes within wait.
func echoes(t *testing.T, c net.Conn, wait time.Duration) bool {
	t.Helper()
	msg := []byte("ping")
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return true
}

// TestKernelLocalPortOnServer is a fault on the server's side, as the
// Vagrant lab's server machine runs one: the server drops its NFS port's
// traffic with one client (--dst CLIENT --local-port 2049 --dir both).
// The client's open connection stalls and a new one times out, the
// counters prove it, while the same client still reaches another port of
// the server (the lab's SSH forward). The plain form of the mistake,
// --port 2049 aimed from the server, counts nothing and is diagnosed as
// local-port.
func TestKernelLocalPortOnServer(t *testing.T) {
	p, m := kernelSetup(t)
	ctx := context.Background()
	t.Cleanup(func() {
		if _, err := m.HealAll(context.Background(), p.Server); err != nil {
			t.Errorf("final heal in the server namespace: %v", err)
		}
	})
	nfs := netip.AddrPortFrom(p.ServerV4, 2049)
	echoServer(t, p.Server, nfs)
	ssh := testnet.ListenTCP(t, p.Server, netip.AddrPortFrom(p.ServerV4, 0))
	c := connect(t, p.Client, nfs)
	if !echoes(t, c, 2*time.Second) {
		t.Fatal("no echo before the fault")
	}

	// The mistake: the peer's port is the client's ephemeral one.
	wrong, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: p.ClientV4.String(), Port: 2049, Netns: p.Server, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if !echoes(t, c, 2*time.Second) {
		t.Fatal("--port 2049 on the server side bit: it should match nothing")
	}
	v, err := netfault.Verify(ctx, m, clock.Real{}, p.Server, wrong.ID, 500*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if v.Bit || v.Packets != 0 || causes(v.Findings) != netfault.CauseLocalPort {
		t.Fatalf("the server-side --port mistake: bit %v, %d packets, findings %+v; want no packets and only local-port", v.Bit, v.Packets, v.Findings)
	}
	if f := v.Findings[0]; !strings.Contains(f.Fix, "--local-port 2049 --port 0") || !strings.Contains(f.Detail, p.ClientV4.String()) {
		t.Fatalf("the finding does not give the fix: %+v", f)
	}
	t.Logf("finding: %s\n  fix: %s", v.Findings[0].Detail, v.Findings[0].Fix)
	if err := m.Heal(ctx, p.Server, wrong.ID); err != nil {
		t.Fatal(err)
	}

	// The fix the finding gives.
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: p.ClientV4.String(), LocalPort: 2049, Dir: netfault.DirBoth, Netns: p.Server, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Rules {
		t.Logf("applied: %s", r)
	}
	if echoes(t, c, 1500*time.Millisecond) {
		t.Fatal("the open connection still echoes under --local-port 2049 --dir both")
	}
	if errno, took := dial(t, p.Client, nfs, 1500*time.Millisecond); errno != unix.ETIMEDOUT {
		t.Fatalf("a new connection to the dropped port ended with %v after %v, want a timeout", errno, took)
	}
	if errno, _ := dial(t, p.Client, ssh.Addr, 2*time.Second); errno != 0 || !accepted(ssh) {
		t.Fatalf("another port of the server (the SSH forward's) is cut too: %v", errno)
	}
	g := faultByID(t, m, p.Server, f.ID)
	if g.Packets == 0 || g.Spec.LocalPort != 2049 || g.Spec.Port != 0 || g.Spec.Dir != netfault.DirBoth {
		t.Fatalf("listed fault: %+v", g)
	}
	v, err = netfault.Verify(ctx, m, clock.Real{}, p.Server, f.ID, time.Second, 100*time.Millisecond)
	if err != nil || !v.Bit {
		t.Fatalf("verify: %+v %v", v, err)
	}
	t.Logf("--local-port drop matched %d packets", g.Packets)

	// The kernel's copy alone (no state file, as after a crash) tells the
	// local port back.
	m2, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	k := faultByID(t, m2, p.Server, f.ID)
	if k.Spec.LocalPort != 2049 || k.Spec.Port != 0 || k.Spec.Dir != netfault.DirBoth || k.Spec.Dst != p.ClientV4.String() {
		t.Fatalf("the kernel's copy reads back as %+v", k.Spec)
	}

	if err := m.Heal(ctx, p.Server, f.ID); err != nil {
		t.Fatal(err)
	}
	if !echoes(t, c, 10*time.Second) {
		t.Fatal("the connection did not recover after heal")
	}
	nothingLeft(t, p.Server)
}
