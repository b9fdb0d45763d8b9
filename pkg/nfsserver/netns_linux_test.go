//go:build linux

package nfsserver

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
)

// TestNetnsPlumbingReal creates the server namespace and the veth pair for
// real, with the client end inside a namespace the test owns (so the
// machine's own routes never change), shows that the server address is
// reached through the veth, and that Stop leaves nothing behind.
func TestNetnsPlumbingReal(t *testing.T) {
	privtest.Short(t)
	privtest.Root(t)
	privtest.Tools(t, "ip")
	ctx := context.Background()
	hostNS := testnet.RandomName("nfslt-host")
	testnet.NewNetns(t, hostNS)
	name := testnet.RandomName("nfslt-srv")
	dir := t.TempDir()
	s, err := NewNetns(NetnsConfig{
		Name: name, HostNetns: hostNS,
		StateDir: filepath.Join(dir, "state"), ExportDir: filepath.Join(dir, "export"),
	}, NewHost())
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config()
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("cleanup Stop: %v", err)
		}
	})
	if err := s.SetupNetwork(ctx); err != nil {
		t.Fatalf("SetupNetwork: %v", err)
	}
	server := netip.AddrPortFrom(c.ServerAddr(), NFSPort)
	// Nothing listens yet: the server namespace's kernel answers with RST.
	// A timeout is retried (five 2 s dials at most): in one CI run, with
	// two TCG guests busy beside the tests, the first dial after the veth
	// came up saw neither SYN answered within its 2 s.
	errno, err := testnet.Dial(hostNS, server, 2*time.Second)
	for i := 1; i < 5 && err == nil && errno == unix.ETIMEDOUT; i++ {
		t.Logf("dial %s before listening: attempt %d timed out", server, i)
		errno, err = testnet.Dial(hostNS, server, 2*time.Second)
	}
	if err != nil || errno != unix.ECONNREFUSED {
		t.Fatalf("dial %s before listening = %v, %v; want ECONNREFUSED from the server namespace", server, errno, err)
	}
	l := testnet.ListenTCP(t, name, server)
	if errno, err := testnet.Dial(hostNS, server, 2*time.Second); err != nil || errno != 0 {
		t.Fatalf("dial %s = %v, %v", server, errno, err)
	}
	// The listener counts in its accept goroutine: give it a moment.
	for i := 0; i < 100 && l.Accepted() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if l.Accepted() != 1 {
		t.Errorf("listener in %s accepted %d connections, want 1", name, l.Accepted())
	}
	st := s.Status(ctx)
	if !st.Netns || !st.Veth || st.Running {
		t.Errorf("status after plumbing: %+v", st)
	}

	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	out, err := cmdrun.Output(ctx, "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), name) {
		t.Errorf("namespace %s left behind: %s", name, out)
	}
	if err := cmdrun.Run(ctx, "ip", "-n", hostNS, "link", "show", c.HostVeth); err == nil {
		t.Errorf("veth %s left behind in %s", c.HostVeth, hostNS)
	}
	if NewHost().Exists(c.StateDir) {
		t.Errorf("state dir %s left behind", c.StateDir)
	}
	if err := s.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// refusingHost is the real host for reads, but runs no command: the test
// must not change this machine if the kernel unexpectedly has nfsd.
type refusingHost struct{ Host }

func (refusingHost) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	return nil, errors.New("refused in test: " + name)
}

// TestNetnsStartOnKernelWithoutNFSD runs Start against this machine's
// real /proc: the host kernel has no nfsd, so Start must refuse clearly
// and create nothing.
func TestNetnsStartOnKernelWithoutNFSD(t *testing.T) {
	h := refusingHost{NewHost()}
	if hasNFSD(h) {
		t.Skip("this kernel has nfsd; the refusal is tested with a fake host")
	}
	s, err := NewNetns(NetnsConfig{Name: testnet.RandomName("nfslt-srv")}, h)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Start(context.Background())
	if !errors.Is(err, ErrNoKernelNFSD) {
		t.Fatalf("Start = %v, want ErrNoKernelNFSD", err)
	}
	t.Logf("Start on this kernel: %v", err)
	if h.Exists("/run/netns/" + s.Config().Name) {
		t.Error("namespace created although the kernel has no nfsd")
	}
}
