package netfault_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/netfault/netfaulttest"
)

// The JSON under testdata is `nft -j list ruleset` from nft 1.0.6 (Debian
// 12) in a throw-away namespace:
//   - nft-netavark.json: the rules netavark's nftables driver writes for
//     `podman run -p 2049:2049` and `-p 8080:80` (src/firewall/nft.rs);
//   - nft-iptables.json: what iptables-nft made of the seed's podman 4
//     rules (-t nat NETAVARK-DN-1D8E4F6B ... -j DNAT), plus one native
//     `nft add rule ip nat OUTPUT ... tcp dport 2050 dnat` after which
//     `iptables -t nat -S` fails with "table `nat' is incompatible";
//   - nft-forms.json: sets, ranges, a negated prefix, a named set, a
//     verdict map and a nat chain after the filter priority.

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func natFindings(fs []netfault.Finding) []netfault.Finding {
	var out []netfault.Finding
	for _, f := range fs {
		if f.Cause == netfault.CauseNATBeforeFilter {
			out = append(out, f)
		}
	}
	return out
}

func applyDrop(t *testing.T, m *netfault.Manager, dst string, port int, orig bool) string {
	t.Helper()
	f, err := m.Apply(context.Background(), netfault.Spec{Kind: netfault.KindDrop, Dst: dst, Port: port, MatchOriginal: orig}.WithDefaults())
	must(t, err)
	return f.ID
}

func diagnose(t *testing.T, m *netfault.Manager, id string) []netfault.Finding {
	t.Helper()
	fs, err := m.Diagnose(context.Background(), "", id)
	must(t, err)
	return fs
}

// podman 5 with netavark's nftables driver: `iptables -t nat` lists
// nothing, so only nft and conntrack can name the DNAT.
func TestDiagnoseNetavarkNFTables(t *testing.T) {
	m, w, _, _ := newFake(t)
	w.NFT.SetRuleset("", readTestdata(t, "nft-netavark.json"))
	w.Conntrack.Connect("", "tcp", netip.MustParseAddrPort("127.0.0.1:41000"), netip.MustParseAddrPort("127.0.0.1:2049"),
		netip.MustParseAddrPort("10.88.0.5:2049"), netip.MustParseAddrPort("10.88.0.1:41000"))
	// A flow nfslab must not mention: another port, not rewritten.
	w.Conntrack.Connect("", "tcp", netip.MustParseAddrPort("127.0.0.1:41001"), netip.MustParseAddrPort("127.0.0.1:22"),
		netip.MustParseAddrPort("127.0.0.1:22"), netip.MustParseAddrPort("127.0.0.1:41001"))
	nat := natFindings(diagnose(t, m, applyDrop(t, m, "127.0.0.1", 2049, false)))
	if len(nat) != 2 {
		t.Fatalf("want one nft and one conntrack finding, got %+v", nat)
	}
	rule, ct := nat[0], nat[1]
	for _, want := range []string{"table inet netavark", "chain nv_2f259bab_10_88_0_0_nm16_dnat", "handle ",
		"OUTPUT -> NETAVARK-HOSTPORT-DNAT -> nv_2f259bab_10_88_0_0_nm16_dnat", "tcp dport 2049 dnat ip to 10.88.0.5:2049",
		"rewrites 127.0.0.1/32 port 2049 to 10.88.0.5:2049", "`iptables -t nat` does not list it"} {
		if !strings.Contains(rule.Detail, want) {
			t.Errorf("nft finding lacks %q: %s", want, rule.Detail)
		}
	}
	if !strings.Contains(rule.Fix, "--match-original") || !strings.Contains(rule.Fix, "nft -a list chain inet netavark nv_2f259bab_10_88_0_0_nm16_dnat") {
		t.Errorf("nft fix: %s", rule.Fix)
	}
	if strings.Contains(rule.Detail, "10.88.0.6") {
		t.Errorf("the 8080 rule was reported for port 2049: %s", rule.Detail)
	}
	for _, want := range []string{"conntrack in this network namespace", "1 tcp connection(s) to 127.0.0.1:2049 answered by 10.88.0.5:2049",
		"127.0.0.1:41000 -> 127.0.0.1:2049", "rewritten too, to 10.88.0.1 (masquerade/SNAT)"} {
		if !strings.Contains(ct.Detail, want) {
			t.Errorf("conntrack finding lacks %q: %s", want, ct.Detail)
		}
	}
	if !strings.Contains(ct.Fix, "aim the fault at 10.88.0.5:2049") {
		t.Errorf("conntrack fix: %s", ct.Fix)
	}
	t.Logf("nft finding: %s\n  fix: %s", rule.Detail, rule.Fix)
	t.Logf("conntrack finding: %s\n  fix: %s", ct.Detail, ct.Fix)

	// netavark jumps to its DNAT chain only for local destinations (fib
	// daddr type local): a remote address on the same port is not
	// rewritten, and conntrack has nothing to say either.
	if nat := natFindings(diagnose(t, m, applyDrop(t, m, "192.0.2.7", 2049, false))); len(nat) != 0 {
		t.Errorf("remote destination: %+v", nat)
	}
	// IPv6 localhost: netavark's `dnat ip to` in its inet table leaves
	// IPv6 alone.
	if nat := natFindings(diagnose(t, m, applyDrop(t, m, "::1", 2049, false))); len(nat) != 0 {
		t.Errorf("::1: %+v", nat)
	}
	// Another local port: neither source has a rewrite for it.
	if nat := natFindings(diagnose(t, m, applyDrop(t, m, "127.0.0.1", 2050, false))); len(nat) != 0 {
		t.Errorf("port 2050: %+v", nat)
	}
	// --match-original already matches the original destination.
	if nat := natFindings(diagnose(t, m, applyDrop(t, m, "127.0.0.1", 2049, true))); len(nat) != 0 {
		t.Errorf("match-original: %+v", nat)
	}
}

// iptables-nft's rules show in nft too: the DNAT is named once, as
// iptables prints it. When iptables cannot list the nat table (a native
// rule in it), nft names what is there.
func TestDiagnoseIPTablesNFTNamedOnce(t *testing.T) {
	m, w, _, _ := newFake(t)
	w.NFT.SetRuleset("", readTestdata(t, "nft-iptables.json"))
	ipt := w.IPTables("", "iptables")
	must(t, ipt.NewChain("nat", "NETAVARK-DN-1D8E4F6B"))
	must(t, ipt.Append("nat", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETAVARK-DN-1D8E4F6B"))
	must(t, ipt.Append("nat", "NETAVARK-DN-1D8E4F6B", "-d", "127.0.0.1/32", "-p", "tcp", "-m", "tcp", "--dport", "2049", "-j", "DNAT", "--to-destination", "10.88.0.5:2049"))
	nat := natFindings(diagnose(t, m, applyDrop(t, m, "127.0.0.1", 2049, false)))
	if len(nat) != 1 || !strings.Contains(nat[0].Detail, "`-t nat -A NETAVARK-DN-1D8E4F6B") {
		t.Fatalf("want the iptables rule named once, got %+v", nat)
	}

	// The real iptables-nft refuses to list a nat table holding a rule it
	// cannot translate back (iptables 1.8.9, exit status 1).
	ipt.Hook = func(op, table, chain string, args []string) error {
		if table == "nat" {
			return &netfaulttest.Error{Args: []string{"iptables", "-t", "nat", "-S"}, Status: 1,
				Msg: "iptables v1.8.9 (nf_tables): table `nat' is incompatible, use 'nft' tool.\n\n"}
		}
		return nil
	}
	nat = natFindings(diagnose(t, m, applyDrop(t, m, "127.0.0.1", 2050, false)))
	if len(nat) != 1 || !strings.Contains(nat[0].Detail, "table ip nat, chain OUTPUT") || !strings.Contains(nat[0].Detail, "to 10.88.0.7:2050") {
		t.Fatalf("want the native rule in ip nat OUTPUT named by nft, got %+v", nat)
	}
	// And the iptables rule is not lost either: nft names it now.
	nat = natFindings(diagnose(t, m, applyDrop(t, m, "127.0.0.1", 2049, false)))
	if len(nat) != 1 || !strings.Contains(nat[0].Detail, "chain NETAVARK-DN-1D8E4F6B") || !strings.Contains(nat[0].Detail, "OUTPUT -> NETAVARK-DN-1D8E4F6B") ||
		!strings.Contains(nat[0].Detail, "xt target DNAT") || !strings.Contains(nat[0].Fix, "nft -a list chain ip nat NETAVARK-DN-1D8E4F6B") {
		t.Fatalf("want the iptables-nft rule named by nft when iptables cannot list it, got %+v", nat)
	}
}

// The operand forms nft prints: anonymous and named sets, ranges, a
// negated prefix, a verdict map, protocols, and a nat chain that runs
// after the filter table.
func TestDiagnoseNFTForms(t *testing.T) {
	m, w, _, _ := newFake(t)
	w.NFT.SetRuleset("", readTestdata(t, "nft-forms.json"))
	var got []string
	for _, f := range natFindings(diagnose(t, m, applyDrop(t, m, "127.0.0.1", 2049, false))) {
		end := strings.Index(f.Detail, " before filter")
		got = append(got, f.Detail[strings.LastIndex(f.Detail[:end], " to ")+4:end])
	}
	want := []string{
		"10.1.0.1",        // tcp dport { 111, 2049 } ip daddr 127.0.0.1
		"10.1.0.2:2049",   // tcp dport 2000-3000
		"local port 3049", // tcp dport @ports redirect to :3049
		"10.1.0.5",        // tcp dport vmap @portjumps -> via_map
	}
	// Not: ip daddr != 127.0.0.0/8 (10.1.0.3), udp dport 2049 (10.1.0.4),
	// the chain at priority filter + 10 (10.1.0.6).
	if !slices.Equal(got, want) {
		t.Fatalf("rewrites found: %q, want %q", got, want)
	}
	// A remote destination passes the negated prefix and not the
	// 127.0.0.1 match.
	got = nil
	for _, f := range natFindings(diagnose(t, m, applyDrop(t, m, "192.0.2.1", 2049, false))) {
		got = append(got, f.Detail)
	}
	if len(got) != 4 || !strings.Contains(strings.Join(got, "\n"), "to 10.1.0.3 before") || strings.Contains(strings.Join(got, "\n"), "to 10.1.0.1 before") {
		t.Fatalf("remote destination: %q", got)
	}
}

// Without nft, or with ctnetlink refusing, Diagnose still answers with
// what the other sources show.
func TestDiagnoseWithoutNFTOrConntrack(t *testing.T) {
	m, w, _, _ := newFake(t)
	w.NFT.Missing = true
	w.Conntrack.Connect("", "tcp", netip.MustParseAddrPort("127.0.0.1:41000"), netip.MustParseAddrPort("127.0.0.1:2049"),
		netip.MustParseAddrPort("10.88.0.5:2049"), netip.MustParseAddrPort("127.0.0.1:41000"))
	nat := natFindings(diagnose(t, m, applyDrop(t, m, "127.0.0.1", 2049, false)))
	if len(nat) != 1 || !strings.Contains(nat[0].Detail, "answered by 10.88.0.5:2049") || strings.Contains(nat[0].Detail, "masquerade") {
		t.Fatalf("conntrack alone: %+v", nat)
	}
	if w.NFT.Calls == 0 {
		t.Fatal("nft was not asked")
	}
	w.NFT.Missing = false
	w.NFT.SetRuleset("", readTestdata(t, "nft-netavark.json"))
	w.Conntrack.Err = errors.New("netlink receive: protocol not supported")
	nat = natFindings(diagnose(t, m, applyDrop(t, m, "127.0.0.1", 2049, false)))
	if len(nat) != 1 || !strings.Contains(nat[0].Detail, "nft rule") {
		t.Fatalf("nft alone: %+v", nat)
	}
}
