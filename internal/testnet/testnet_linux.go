package testnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/netnsdo"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
)

// Pair is a client and a server namespace joined by a veth pair.
type Pair struct {
	Client, Server     string     // namespace names under /run/netns
	ClientIf, ServerIf string     // veth names inside each namespace
	ClientV4, ServerV4 netip.Addr // 10.211.X.1 and 10.211.X.2 (/24)
	ClientV6, ServerV6 netip.Addr // fd00:211:X::1 and ::2 (/64)
}

// Guard applies the privileged-test guards testnet needs: root and ip.
func Guard(t testing.TB) {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "ip")
}

// RandomName returns prefix-<8 hex chars>.
func RandomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// NewPair creates the two namespaces (named prefix-c-XXXX and prefix-s-XXXX),
// the veth pair and the addresses, brings up lo in both, and registers
// their removal in t.Cleanup.
func NewPair(t testing.TB, prefix string) *Pair {
	t.Helper()
	Guard(t)
	n, err := rand.Int(rand.Reader, big.NewInt(256))
	if err != nil {
		t.Fatalf("random subnet: %v", err)
	}
	x := int(n.Int64())
	p := &Pair{
		Client:   RandomName(prefix + "-c"),
		Server:   RandomName(prefix + "-s"),
		ClientIf: "nfslc0",
		ServerIf: "nfsls0",
		ClientV4: netip.AddrFrom4([4]byte{10, 211, byte(x), 1}),
		ServerV4: netip.AddrFrom4([4]byte{10, 211, byte(x), 2}),
		ClientV6: netip.MustParseAddr(fmt.Sprintf("fd00:211:%x::1", x)),
		ServerV6: netip.MustParseAddr(fmt.Sprintf("fd00:211:%x::2", x)),
	}
	NewNetns(t, p.Client)
	NewNetns(t, p.Server)
	ctx := context.Background()
	steps := [][]string{
		// Created inside the client namespace with its peer placed straight
		// into the server namespace: no link ever exists in the caller's.
		{"-n", p.Client, "link", "add", p.ClientIf, "type", "veth", "peer", "name", p.ServerIf, "netns", p.Server},
		{"-n", p.Client, "addr", "add", p.ClientV4.String() + "/24", "dev", p.ClientIf},
		{"-n", p.Server, "addr", "add", p.ServerV4.String() + "/24", "dev", p.ServerIf},
		{"-n", p.Client, "addr", "add", p.ClientV6.String() + "/64", "dev", p.ClientIf, "nodad"},
		{"-n", p.Server, "addr", "add", p.ServerV6.String() + "/64", "dev", p.ServerIf, "nodad"},
		{"-n", p.Client, "link", "set", p.ClientIf, "up"},
		{"-n", p.Server, "link", "set", p.ServerIf, "up"},
	}
	for _, s := range steps {
		if err := cmdrun.Run(ctx, "ip", s...); err != nil {
			t.Fatalf("setting up test network: %v", err)
		}
	}
	return p
}

// NewNetns creates an empty namespace called name with lo up and removes it
// in t.Cleanup.
func NewNetns(t testing.TB, name string) {
	t.Helper()
	Guard(t)
	ctx := context.Background()
	if err := cmdrun.Run(ctx, "ip", "netns", "add", name); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := cmdrun.Run(context.Background(), "ip", "netns", "del", name); err != nil {
			t.Errorf("removing namespace %s: %v", name, err)
		}
	})
	if err := cmdrun.Run(ctx, "ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		t.Fatalf("bringing up lo in %s: %v", name, err)
	}
}

// Do runs fn on a locked OS thread that has entered namespace nsName
// (/run/netns/nsName). Sockets created inside fn belong to that namespace
// and keep working after Do returns; child processes started inside fn
// inherit it.
func Do(nsName string, fn func() error) error { return netnsdo.Do(nsName, fn) }

// Exec runs name with args inside namespace ns (through `ip netns exec`)
// and returns stdout.
func Exec(ctx context.Context, ns, name string, args ...string) ([]byte, error) {
	return cmdrun.Output(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// MustExec is Exec that fails the test on error.
func MustExec(t testing.TB, ns, name string, args ...string) string {
	t.Helper()
	out, err := Exec(context.Background(), ns, name, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(out)
}

// TCPServer accepts connections inside a namespace and counts them.
type TCPServer struct {
	Addr     netip.AddrPort
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

// Accepted reports how many connections were accepted so far.
func (s *TCPServer) Accepted() int64 { return s.accepted.Load() }

// ListenTCP starts a TCP listener on addr (port 0 picks one) inside ns.
// It accepts and immediately closes connections, and is closed in t.Cleanup.
func ListenTCP(t testing.TB, ns string, addr netip.AddrPort) *TCPServer {
	t.Helper()
	s := &TCPServer{}
	err := Do(ns, func() error {
		ln, err := net.Listen("tcp", addr.String())
		s.ln = ln
		return err
	})
	if err != nil {
		t.Fatalf("listening on tcp %v in %s: %v", addr, ns, err)
	}
	s.Addr = netip.MustParseAddrPort(s.ln.Addr().String())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = s.ln.Close(); s.wg.Wait() })
	return s
}

// UDPServer receives datagrams inside a namespace and counts them.
type UDPServer struct {
	Addr     netip.AddrPort
	conn     *net.UDPConn
	received atomic.Int64
	wg       sync.WaitGroup
}

// Received reports how many datagrams arrived so far.
func (s *UDPServer) Received() int64 { return s.received.Load() }

// ListenUDP starts a UDP receiver on addr inside ns with a large receive
// buffer; it is closed in t.Cleanup.
func ListenUDP(t testing.TB, ns string, addr netip.AddrPort) *UDPServer {
	t.Helper()
	s := &UDPServer{}
	err := Do(ns, func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return err
		}
		_ = c.SetReadBuffer(4 << 20)
		s.conn = c
		return nil
	})
	if err != nil {
		t.Fatalf("listening on udp %v in %s: %v", addr, ns, err)
	}
	s.Addr = s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 2048)
		for {
			if _, _, err := s.conn.ReadFromUDPAddrPort(buf); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			s.received.Add(1)
		}
	}()
	t.Cleanup(func() { _ = s.conn.Close(); s.wg.Wait() })
	return s
}

// Dial connects over TCP to addr from inside ns and closes the connection.
// It returns 0 on success, unix.ETIMEDOUT when timeout passed, or the
// errno the connect failed with (EHOSTUNREACH, ECONNREFUSED, EACCES,
// EINVAL, ...). err is set only when the attempt could not be made or
// failed without an errno.
func Dial(ns string, addr netip.AddrPort, timeout time.Duration) (unix.Errno, error) {
	var errno unix.Errno
	err := Do(ns, func() error {
		c, err := net.DialTimeout("tcp", addr.String(), timeout)
		if err == nil {
			return c.Close()
		}
		return err
	})
	if err == nil {
		return 0, nil
	}
	if errors.As(err, &errno) {
		return errno, nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return unix.ETIMEDOUT, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return unix.ETIMEDOUT, nil
	}
	return 0, err
}

// SendUDP opens a UDP socket inside ns and sends n datagrams of size bytes
// to addr, sleeping pace between them (so a receiver never overflows).
// It returns how many sends succeeded.
func SendUDP(ns string, addr netip.AddrPort, n, size int, pace time.Duration) (int, error) {
	var c *net.UDPConn
	err := Do(ns, func() error {
		var err error
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("opening udp socket in %s: %w", ns, err)
	}
	defer c.Close()
	buf := make([]byte, size)
	sent := 0
	for i := 0; i < n; i++ {
		if _, err := c.Write(buf); err == nil {
			sent++
		}
		if pace > 0 {
			time.Sleep(pace)
		}
	}
	return sent, nil
}

// RemoveTree unmounts whatever is mounted below dir, deepest first (podman's
// overlay driver bind-mounts its root onto itself), and removes dir.
func RemoveTree(t testing.TB, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err == nil {
		var mnts []string
		for l := range strings.Lines(string(b)) {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
				mnts = append(mnts, f[4])
			}
		}
		for i := len(mnts) - 1; i >= 0; i-- {
			if err := unix.Unmount(mnts[i], unix.MNT_DETACH); err != nil {
				t.Errorf("unmounting %s: %v", mnts[i], err)
			}
		}
	}
	// Bounded retries: conmon starts `podman container cleanup` when a
	// container exits, which may still write below dir ("directory not
	// empty", seen once in TestContainerServerReal's nftables run).
	var rerr error
	for range 10 {
		if rerr = os.RemoveAll(dir); rerr == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("removing %s: %v", dir, rerr)
}

// PodmanLab is a rootful podman set-up of a test's own: a namespace for its
// bridge, DNAT and conntrack entries, and a short directory (podman refuses
// a runroot longer than 50 characters, as t.TempDir's are) for its storage
// and a containers.conf choosing netavark's firewall driver.
type PodmanLab struct {
	NS, Dir string
	// Env selects the driver: CONTAINERS_CONF_OVERRIDE and NETAVARK_FW.
	Env []string
}

// NewPodmanLab makes the namespace and directory and removes both in
// t.Cleanup (the directory after whatever podman left mounted in it).
func NewPodmanLab(t testing.TB, prefix, driver string) PodmanLab {
	t.Helper()
	l := PodmanLab{NS: RandomName(prefix)}
	NewNetns(t, l.NS)
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	l.Dir = dir
	t.Cleanup(func() { RemoveTree(t, dir) })
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "[network]\nfirewall_driver = %q\nnetwork_config_dir = %q\n", driver, filepath.Join(dir, "networks")), 0o644); err != nil {
		t.Fatal(err)
	}
	l.Env = []string{"CONTAINERS_CONF_OVERRIDE=" + conf, "NETAVARK_FW=" + driver}
	return l
}

// Nsenter is the prefix that runs a command in the lab's namespace:
// nsenter, not `ip netns exec`, which remounts /sys and so hides the
// cgroup file system from podman's runtime.
func (l PodmanLab) Nsenter() []string { return []string{"nsenter", "--net=/run/netns/" + l.NS} }
