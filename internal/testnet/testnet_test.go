package testnet

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPairConnects(t *testing.T) {
	Guard(t)
	p := NewPair(t, "nfslt-tn")
	for _, srv := range []netip.Addr{p.ServerV4, p.ServerV6} {
		tcp := ListenTCP(t, p.Server, netip.AddrPortFrom(srv, 0))
		errno, err := Dial(p.Client, tcp.Addr, 3*time.Second)
		if err != nil || errno != 0 {
			t.Fatalf("dial %v from client ns: errno=%v err=%v", tcp.Addr, errno, err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for tcp.Accepted() < 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if tcp.Accepted() != 1 {
			t.Fatalf("accepted %d connections, want 1", tcp.Accepted())
		}
		// A closed port refuses at once: proves errno reporting.
		closed := netip.AddrPortFrom(srv, tcp.Addr.Port()+1)
		if errno, err := Dial(p.Client, closed, 3*time.Second); err != nil || errno != unix.ECONNREFUSED {
			t.Fatalf("dial closed port %v: errno=%v err=%v, want ECONNREFUSED", closed, errno, err)
		}
	}
	udp := ListenUDP(t, p.Server, netip.AddrPortFrom(p.ServerV4, 0))
	sent, err := SendUDP(p.Client, udp.Addr, 50, 64, 0)
	if err != nil || sent != 50 {
		t.Fatalf("send udp: sent=%d err=%v", sent, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for udp.Received() < 50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if udp.Received() != 50 {
		t.Fatalf("received %d datagrams, want 50", udp.Received())
	}
	// The client namespace really is separate: its addresses are there, and
	// the server address is not local to it.
	out := MustExec(t, p.Client, "ip", "-o", "addr", "show", "dev", p.ClientIf)
	if !strings.Contains(out, p.ClientV4.String()) || strings.Contains(out, p.ServerV4.String()) {
		t.Fatalf("client addresses wrong: %s", out)
	}
}

func TestDoEntersNamespace(t *testing.T) {
	Guard(t)
	name := RandomName("nfslt-tn")
	NewNetns(t, name)
	outside, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := Do(name, func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside == outside {
		t.Fatalf("Do did not enter %s: namespace %s", name, inside)
	}
	if err := Do(name+"-missing", func() error { return nil }); err == nil {
		t.Fatal("Do into a missing namespace succeeded")
	}
}
