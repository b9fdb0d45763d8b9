package netfault_test

import (
	"context"
	"io/fs"
	"net"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vishvananda/netlink"

	"github.com/nfslab/nfslab/pkg/netfault"
)

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

// 127.0.0.1:2049 LISTEN inode 4242; 10.0.0.1:40000 -> 10.88.0.5:2049 ESTABLISHED.
const tcpLines = tcpHeader +
	"   0: 0100007F:0801 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n" +
	"   1: 0100000A:9C40 0500580A:0801 01 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0\n"

func causes(fs []netfault.Finding) string {
	var c []string
	for _, f := range fs {
		c = append(c, f.Cause)
	}
	return strings.Join(c, ",")
}

func TestParseProcNetTCP(t *testing.T) {
	s, err := netfault.ParseProcNetTCP([]byte(tcpLines))
	if err != nil || len(s) != 2 {
		t.Fatal(s, err)
	}
	if s[0].Local.String() != "127.0.0.1:2049" || s[0].State != 0x0A || s[0].Inode != 4242 {
		t.Fatalf("%+v", s[0])
	}
	if s[1].Remote.String() != "10.88.0.5:2049" {
		t.Fatalf("%+v", s[1])
	}
	v6 := tcpHeader + "   0: 00000000000000000000000001000000:0801 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1\n"
	s, err = netfault.ParseProcNetTCP([]byte(v6))
	if err != nil || s[0].Local.String() != "[::1]:2049" {
		t.Fatal(s, err)
	}
}

func TestDiagnoseSeedLocalhostSetup(t *testing.T) {
	m, w, _, _ := newFake(t)
	ctx := context.Background()
	ipt := w.IPTables("", "iptables")
	// The seed: podman publishes 2049 with DNAT in nat OUTPUT; a user rule
	// with --sport 2049 --dport 2049; an ESTABLISHED ACCEPT inserted later.
	must(t, ipt.NewChain("nat", "NETAVARK-HOSTPORT-DNAT"))
	must(t, ipt.NewChain("nat", "NETAVARK-DN-1D8E4F6B"))
	must(t, ipt.Append("nat", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETAVARK-HOSTPORT-DNAT"))
	must(t, ipt.Append("nat", "NETAVARK-HOSTPORT-DNAT", "-p", "tcp", "-m", "tcp", "--dport", "2049", "-j", "NETAVARK-DN-1D8E4F6B"))
	must(t, ipt.Append("nat", "NETAVARK-DN-1D8E4F6B", "-p", "tcp", "-m", "tcp", "--dport", "2049", "-j", "DNAT", "--to-destination", "10.88.0.5:2049"))
	must(t, ipt.Append("filter", "OUTPUT", "-d", "127.0.0.1/32", "-p", "tcp", "-m", "tcp", "--sport", "2049", "--dport", "2049", "-j", "DROP"))
	w.SetNetFile("", "tcp", tcpLines)
	w.SetNetFile("", "tcp6", tcpHeader)
	w.Root = fstest.MapFS{
		"sys/module/nfs/parameters/localio_enabled": {Data: []byte("Y\n")},
		"proc/777/comm": {Data: []byte("rootlessport\n")},
		"proc/777/fd/3": {Data: []byte("socket:[4242]"), Mode: 0o777 | fsModeSymlink},
		"proc/1/comm":   {Data: []byte("systemd\n")},
		"proc/1/fd/0":   {Data: []byte("/dev/null"), Mode: 0o777 | fsModeSymlink},
	}
	w.Routes("").Addrs = []netlink.Addr{{IPNet: &net.IPNet{IP: net.ParseIP("10.0.0.1"), Mask: net.CIDRMask(24, 32)}}}
	m2, err := netfault.NewManager(w.Options(nil, t.TempDir()))
	must(t, err)
	_ = m
	f, err := m2.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049}.WithDefaults())
	must(t, err)
	must(t, ipt.Insert("filter", "OUTPUT", 1, "-m", "state", "--state", "ESTABLISHED", "-j", "ACCEPT"))
	fs, err := m2.Diagnose(ctx, "", f.ID)
	must(t, err)
	got := causes(fs)
	for _, want := range []string{"earlier-accept", "sport-mistake", "nat-before-filter", "no-connection", "userspace-proxy", "localio"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in %s", want, got)
		}
	}
	for _, f := range fs {
		if f.Cause == "nat-before-filter" && (!strings.Contains(f.Detail, "NETAVARK-DN-1D8E4F6B") || !strings.Contains(f.Detail, "10.88.0.5:2049") || !strings.Contains(f.Fix, "--match-original")) {
			t.Errorf("nat finding does not name the rule: %+v", f)
		}
		if f.Cause == "userspace-proxy" && !strings.Contains(f.Detail, "rootlessport (pid 777)") {
			t.Errorf("proxy finding: %+v", f)
		}
	}
	// With --match-original the NAT and connection findings go away.
	g, err := m2.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "127.0.0.1", Port: 2049, MatchOriginal: true}.WithDefaults())
	must(t, err)
	fs, err = m2.Diagnose(ctx, "", g.ID)
	must(t, err)
	if c := causes(fs); strings.Contains(c, "nat-before-filter") || strings.Contains(c, "no-connection") || strings.Contains(c, "earlier-accept") {
		t.Fatalf("match-original findings: %s", c)
	}
}

func TestDiagnoseQuietWhenTrafficFlows(t *testing.T) {
	m, w, _, _ := newFake(t)
	ctx := context.Background()
	w.SetNetFile("", "tcp", tcpLines)
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.88.0.5", Port: 2049}.WithDefaults())
	must(t, err)
	fs, err := m.Diagnose(ctx, "", f.ID)
	must(t, err)
	if len(fs) != 0 {
		t.Fatalf("unexpected findings: %+v", fs)
	}
	r, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindUnreachable, Dst: "127.0.0.1"}.WithDefaults())
	must(t, err)
	fs, err = m.Diagnose(ctx, "", r.ID)
	must(t, err)
	if causes(fs) != "local-route" {
		t.Fatalf("route to a local address: %+v", fs)
	}
}

// TestDiagnoseLocalIOAcrossNamespaces: LOCALIO crosses network
// namespaces, so a server in a netns on this kernel (not a local address)
// is named when knfsd runs here, and only then.
func TestDiagnoseLocalIOAcrossNamespaces(t *testing.T) {
	m, w, _, _ := newFake(t)
	ctx := context.Background()
	w.SetNetFile("", "tcp", tcpLines)
	w.Root["sys/module/nfs/parameters/localio_enabled"] = &fstest.MapFile{Data: []byte("Y\n")} // the manager's own map
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.88.0.5", Port: 2049, MatchOriginal: true}.WithDefaults())
	must(t, err)
	fs, err := m.Diagnose(ctx, "", f.ID)
	must(t, err)
	if len(fs) != 0 {
		t.Fatalf("no knfsd on this kernel, yet: %+v", fs)
	}
	w.Root["proc/filesystems"] = &fstest.MapFile{Data: []byte("nodev\tsysfs\nnodev\tnfsd\n")}
	fs, err = m.Diagnose(ctx, "", f.ID)
	must(t, err)
	if causes(fs) != "localio" || !strings.Contains(fs[0].Detail, "this kernel runs knfsd") ||
		!strings.Contains(fs[0].Fix, "echo N > /sys/module/nfs/parameters/localio_enabled") || strings.Contains(fs[0].Fix, "another network namespace") {
		t.Fatalf("finding %+v", fs)
	}
	w.Root["sys/module/nfs/parameters/localio_enabled"] = &fstest.MapFile{Data: []byte("N\n")}
	if fs, _ = m.Diagnose(ctx, "", f.ID); len(fs) != 0 {
		t.Fatalf("LOCALIO off: %+v", fs)
	}
}

const fsModeSymlink = fs.ModeSymlink

// On the server, a fault aimed with --port at the server's own port
// matches nothing (its clients connect from ephemeral ports): the
// diagnosis says so and gives --local-port, which then finds the
// connection.
func TestDiagnoseServerSidePort(t *testing.T) {
	m, w, _, _ := newFake(t)
	ctx := context.Background()
	// 10.0.0.1:2049 LISTEN; 10.0.0.1:2049 <- 10.0.0.2:812 ESTABLISHED.
	w.SetNetFile("", "tcp", tcpHeader+
		"   0: 0100000A:0801 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n"+
		"   1: 0100000A:0801 0200000A:032C 01 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0\n")
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.2", Port: 2049}.WithDefaults())
	must(t, err)
	fs, err := m.Diagnose(ctx, "", f.ID)
	must(t, err)
	if causes(fs) != netfault.CauseLocalPort || !strings.Contains(fs[0].Fix, "--local-port 2049 --port 0") ||
		!strings.Contains(fs[0].Detail, "10.0.0.2 connects to 10.0.0.1:2049 from its port 812") {
		t.Fatalf("findings %+v", fs)
	}
	g, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.2", LocalPort: 2049, Dir: netfault.DirBoth}.WithDefaults())
	must(t, err)
	if fs, err = m.Diagnose(ctx, "", g.ID); err != nil || len(fs) != 0 {
		t.Fatalf("--local-port findings %+v, %v", fs, err)
	}
	h, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.3", LocalPort: 2049}.WithDefaults())
	must(t, err)
	fs, err = m.Diagnose(ctx, "", h.ID)
	must(t, err)
	if causes(fs) != netfault.CauseNoConnection || !strings.Contains(fs[0].Detail, "from 10.0.0.3 to local port 2049") {
		t.Fatalf("no client 10.0.0.3: %+v", fs)
	}
}
