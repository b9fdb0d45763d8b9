package netfault_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// nftLoad feeds ruleset to `nft -f -` inside ns.
func nftLoad(t *testing.T, ns, ruleset string) {
	t.Helper()
	cmd := cmdrun.Command(context.Background(), "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f - in %s: %v\n%s\n%s", ns, err, out, ruleset)
	}
}

// accepted waits up to 2 s for the server to have accepted a connection:
// connect returns before the server's accept loop counts it.
func accepted(ln *testnet.TCPServer) bool {
	waitCount(ln.Accepted, 1)
	return ln.Accepted() > 0
}

// TestKernelNFTDNATDiagnosed is the localhost pitfall with the DNAT where
// podman 5's netavark nftables driver puts it: a native nft table that
// `iptables -t nat` never lists. A drop aimed at 127.0.0.1:2049 counts
// nothing; the diagnosis names the nft table, chain and handle and the
// translation conntrack recorded, and --match-original then bites.
func TestKernelNFTDNATDiagnosed(t *testing.T) {
	p, m := kernelSetup(t)
	privtest.Tools(t, "nft")
	ln := testnet.ListenTCP(t, p.Server, netip.AddrPortFrom(p.ServerV4, 2049))
	testnet.MustExec(t, p.Client, "sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1")
	// netavark's shape (src/firewall/nft.rs): OUTPUT jumps for local
	// destinations to a port chain, which jumps to the network's DNAT chain.
	nftLoad(t, p.Client, `table inet nfslabtest {
	chain OUTPUT {
		type nat hook output priority -100; policy accept;
		fib daddr type local jump HOSTPORT-DNAT
	}
	chain HOSTPORT-DNAT {
		tcp dport 2049 jump nv_test_dnat
	}
	chain nv_test_dnat {
		tcp dport 2049 dnat ip to `+p.ServerV4.String()+`:2049
	}
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 127.0.0.0/8 ip daddr `+p.ServerV4.String()+` masquerade
	}
}
`)
	if out := testnet.MustExec(t, p.Client, "iptables-save", "-t", "nat"); strings.Contains(out, "DNAT") {
		t.Fatalf("iptables lists the nft DNAT, so this test would not prove nft is read:\n%s", out)
	}
	f, v := localhostDropMisses(t, p, m, ln)
	var rule, ct *netfault.Finding
	for i := range v.Findings {
		f := &v.Findings[i]
		switch {
		case f.Cause != netfault.CauseNATBeforeFilter:
		case strings.HasPrefix(f.Detail, "nft rule"):
			if rule != nil {
				t.Fatalf("the DNAT is named twice: %+v", v.Findings)
			}
			rule = f
		case strings.HasPrefix(f.Detail, "conntrack"):
			ct = f
		default:
			t.Errorf("unexpected nat finding: %+v", f)
		}
	}
	to := p.ServerV4.String() + ":2049"
	if rule == nil {
		t.Fatalf("no finding names the nft rule: %+v", v.Findings)
	}
	for _, want := range []string{"table inet nfslabtest", "chain nv_test_dnat", "handle ", "OUTPUT -> HOSTPORT-DNAT -> nv_test_dnat", "to " + to} {
		if !strings.Contains(rule.Detail, want) {
			t.Errorf("nft finding lacks %q: %s", want, rule.Detail)
		}
	}
	// The handle printed is the one nft shows for that rule.
	listing := testnet.MustExec(t, p.Client, "nft", "-a", "list", "chain", "inet", "nfslabtest", "nv_test_dnat")
	found := false
	for _, l := range strings.Split(listing, "\n") {
		if strings.Contains(l, "dnat ip to") {
			found = true
			h := strings.TrimSpace(l[strings.LastIndex(l, "# handle")+len("# handle"):])
			if !strings.Contains(rule.Detail, "handle "+h+",") {
				t.Errorf("finding names another handle than nft's %s: %s", h, rule.Detail)
			}
		}
	}
	if !found {
		t.Errorf("no dnat rule in nft's listing:\n%s", listing)
	}
	if ct == nil || !strings.Contains(ct.Detail, "to 127.0.0.1:2049 answered by "+to) {
		t.Fatalf("no conntrack finding with the translation: %+v", v.Findings)
	}
	t.Logf("nft finding: %s\n  fix: %s", rule.Detail, rule.Fix)
	t.Logf("conntrack finding: %s\n  fix: %s", ct.Detail, ct.Fix)
	// The fix the finding gives works against nft's DNAT too.
	matchOriginalBites(t, p, m, f.ID)
}
