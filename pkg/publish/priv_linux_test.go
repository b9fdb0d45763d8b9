package publish_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/publish"
)

var saveNoise = regexp.MustCompile(`(?m)^#.*\n|\[\d+:\d+\]`)

func save(t *testing.T, ns string) string {
	t.Helper()
	return saveNoise.ReplaceAllString(testnet.MustExec(t, ns, "iptables-save"), "")
}

func routeLocalnet(t *testing.T, ns string) string {
	t.Helper()
	return strings.TrimSpace(testnet.MustExec(t, ns, "cat", "/proc/sys/net/ipv4/conf/all/route_localnet"))
}

// peerServer accepts TCP connections inside ns and records each peer's
// address: the server must see the client's veth address (MASQUERADE),
// as an NFS export for that address requires.
type peerServer struct {
	ln    net.Listener
	mu    sync.Mutex
	peers []netip.Addr
	wg    sync.WaitGroup
}

func listenPeers(t *testing.T, ns string, addr netip.AddrPort) *peerServer {
	t.Helper()
	s := &peerServer{}
	if err := testnet.Do(ns, func() (err error) { s.ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			ap := netip.MustParseAddrPort(c.RemoteAddr().String())
			s.mu.Lock()
			s.peers = append(s.peers, ap.Addr())
			s.mu.Unlock()
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = s.ln.Close(); s.wg.Wait() })
	return s
}

func (s *peerServer) list() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.Addr(nil), s.peers...)
}

func dial(t *testing.T, ns string, addr netip.AddrPort, timeout time.Duration) unix.Errno {
	t.Helper()
	errno, err := testnet.Dial(ns, addr, timeout)
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	return errno
}

// TestPrivPublishLocalhostPitfall is the seed's first experiment in two
// namespaces this test creates: the server's port published on 127.0.0.1
// of the client namespace the way podman does, the seed's drop aimed at
// localhost matching nothing (and Diagnose naming the publish), the
// conntrack-original drop biting, and Unpublish leaving the namespace
// exactly as it was.
func TestPrivPublishLocalhostPitfall(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "iptables", "iptables-save")
	p := testnet.NewPair(t, "nfslpub")
	ctx := context.Background()
	srvAddr := netip.AddrPortFrom(p.ServerV4, 2049)
	srv := listenPeers(t, p.Server, srvAddr)
	local := netip.MustParseAddrPort("127.0.0.1:2049")

	// A user's nat rules, so the table exists before (as on any host with
	// podman or docker) and must be byte-identical after.
	testnet.MustExec(t, p.Client, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "80")
	testnet.MustExec(t, p.Client, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-j", "MASQUERADE")
	testnet.MustExec(t, p.Client, "iptables", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	before := save(t, p.Client)
	hostLocalnet := strings.TrimSpace(string(mustRead(t, "/proc/sys/net/ipv4/conf/all/route_localnet")))
	if v := routeLocalnet(t, p.Client); v != "0" {
		t.Fatalf("fresh namespace has route_localnet=%s", v)
	}
	if e := dial(t, p.Client, local, time.Second); e != unix.ECONNREFUSED {
		t.Fatalf("before publish 127.0.0.1:2049 must be refused, got %v", e)
	}

	pub := publish.New(publish.Options{StateDir: t.TempDir()})
	rec, err := pub.Publish(ctx, publish.Spec{ID: "privtest", Netns: p.Client, From: local, To: srvAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pub.Sweep(context.Background(), p.Client) })
	if rec.PrevRouteLocalnet != "0" || routeLocalnet(t, p.Client) != "1" {
		t.Fatalf("route_localnet: record %q, now %s", rec.PrevRouteLocalnet, routeLocalnet(t, p.Client))
	}
	if v := strings.TrimSpace(string(mustRead(t, "/proc/sys/net/ipv4/conf/all/route_localnet"))); v != hostLocalnet {
		t.Fatalf("the host namespace's route_localnet changed: %s -> %s", hostLocalnet, v)
	}
	if e := dial(t, p.Client, local, 2*time.Second); e != 0 {
		t.Fatalf("127.0.0.1:2049 does not reach the server through the publish: %v", e)
	}
	// connect returns when the handshake is done, before the server's
	// accept loop has recorded the peer: give it a bounded moment.
	peers := srv.list()
	for deadline := time.Now().Add(2 * time.Second); len(peers) == 0 && time.Now().Before(deadline); peers = srv.list() {
		time.Sleep(10 * time.Millisecond)
	}
	if len(peers) != 1 || peers[0] != p.ClientV4 {
		t.Fatalf("server saw peers %v, want the client's veth address %v (MASQUERADE)", peers, p.ClientV4)
	}

	// The seed's rule: -d 127.0.0.1 --dport 2049 in filter OUTPUT.
	m, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = m.HealAll(context.Background(), p.Client) })
	naive, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049, Netns: p.Client, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if e := dial(t, p.Client, local, 2*time.Second); e != 0 {
		t.Fatalf("the naive drop bit (it must not, behind the DNAT): %v", e)
	}
	v, err := netfault.Verify(ctx, m, clock.Real{}, p.Client, naive.ID, 500*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if v.Bit || v.Packets != 0 {
		t.Fatalf("naive drop counted hits: %+v", v)
	}
	var nat *netfault.Finding
	for i := range v.Findings {
		if v.Findings[i].Cause == netfault.CauseNATBeforeFilter && nat == nil {
			nat = &v.Findings[i]
		}
	}
	if nat == nil || !strings.Contains(nat.Detail, publish.ChainOut) || !strings.Contains(nat.Detail, "nfslab:publish-privtest") || !strings.Contains(nat.Detail, srvAddr.String()) {
		t.Fatalf("findings do not name the publish rule: %+v", v.Findings)
	}
	t.Logf("finding: %s; fix: %s", nat.Detail, nat.Fix)
	if err := m.Heal(ctx, p.Client, naive.ID); err != nil {
		t.Fatal(err)
	}

	// The fix: the connection's original destination.
	fix, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049, MatchOriginal: true, Netns: p.Client, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if e := dial(t, p.Client, local, 1500*time.Millisecond); e != unix.ETIMEDOUT {
		t.Fatalf("--match-original drop did not bite: %v", e)
	}
	fs, err := m.List(ctx, p.Client)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.ID == fix.ID && f.Packets == 0 {
			t.Fatalf("--match-original counters stayed at 0")
		}
	}
	if err := m.Heal(ctx, p.Client, fix.ID); err != nil {
		t.Fatal(err)
	}
	if e := dial(t, p.Client, local, 2*time.Second); e != 0 {
		t.Fatalf("after heal the publish must work again: %v", e)
	}

	if err := pub.Unpublish(ctx, p.Client, "privtest"); err != nil {
		t.Fatal(err)
	}
	if v := routeLocalnet(t, p.Client); v != "0" {
		t.Fatalf("route_localnet not restored: %s", v)
	}
	if after := save(t, p.Client); after != before {
		t.Fatalf("iptables-save differs after unpublish:\n%s\nbefore:\n%s", after, before)
	}
	if e := dial(t, p.Client, local, time.Second); e != unix.ECONNREFUSED {
		t.Fatalf("after unpublish 127.0.0.1:2049 must be refused again, got %v", e)
	}
}

// TestPrivSweepAfterCrash: a publish whose process is gone (only its
// record and kernel objects remain) is removed by a new Publisher's Sweep.
func TestPrivSweepAfterCrash(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "iptables", "iptables-save")
	ns := testnet.RandomName("nfslpub-x")
	testnet.NewNetns(t, ns)
	testnet.MustExec(t, ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "80")
	before := save(t, ns)
	state := t.TempDir()
	ctx := context.Background()
	if _, err := publish.New(publish.Options{StateDir: state}).Publish(ctx, publish.Spec{ID: "crashed", Netns: ns,
		From: netip.MustParseAddrPort("127.0.0.1:2049"), To: netip.MustParseAddrPort("10.213.0.2:2049")}); err != nil {
		t.Fatal(err)
	}
	ids, err := publish.New(publish.Options{StateDir: state}).Sweep(ctx)
	if err != nil || len(ids) != 1 || ids[0] != "publish-crashed (netns "+ns+")" {
		t.Fatalf("sweep: %q %v", ids, err)
	}
	if after := save(t, ns); after != before {
		t.Fatalf("left behind:\n%s", after)
	}
	if v := routeLocalnet(t, ns); v != "0" {
		t.Fatalf("route_localnet %s", v)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
