package ownchain_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/internal/ownchain"
	"github.com/nfslab/nfslab/pkg/netfault/netfaulttest"
)

var out = ownchain.Chain{Table: "filter", Name: "NFSLAB-T", Builtin: "OUTPUT", Comment: "nfslab"}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseRule(t *testing.T) {
	r, ok := ownchain.ParseRule(`-A NFSLAB-OUTPUT -d 10.0.0.5/32 -p tcp -m tcp --dport 2049 -m comment --comment "nfslab:ab \"x\"" -c 7 420 -j DROP`)
	if !ok || r.Chain != "NFSLAB-OUTPUT" || r.Packets != 7 || r.Bytes != 420 || !r.Counted ||
		r.Comment != `nfslab:ab "x"` || r.Target() != "DROP" || !r.Has["-m tcp"] || r.Opt["--dport"] != "2049" {
		t.Fatalf("parsed %+v", r)
	}
	want := []string{"-d", "10.0.0.5/32", "-p", "tcp", "-m", "tcp", "--dport", "2049", "-m", "comment", "--comment", `nfslab:ab "x"`, "-j", "DROP"}
	if !slices.Equal(r.Args, want) {
		t.Fatalf("args %q", r.Args)
	}
	if r, ok := ownchain.ParseRule("-A\tX\t-j\tACCEPT"); !ok || r.Chain != "X" || r.Target() != "ACCEPT" {
		t.Fatalf("tabs: %+v %v", r, ok)
	}
	for _, l := range []string{"-P OUTPUT ACCEPT", "-N NFSLAB-OUTPUT", "", "# comment"} {
		if _, ok := ownchain.ParseRule(l); ok {
			t.Errorf("%q parsed as a rule", l)
		}
	}
	if got := ownchain.Command("lab", "iptables", []string{"-A", "X", "--comment", "a b"}); got != `ip netns exec lab iptables -A X --comment "a b"` {
		t.Fatalf("command %q", got)
	}
}

func TestEnsureJumpKeepsOneJumpAtRuleOne(t *testing.T) {
	ipt := netfaulttest.NewIPTables("iptables")
	must(t, ipt.Append("filter", "OUTPUT", "-p", "tcp", "-j", "ACCEPT"))
	if present, err := out.EnsureJump(ipt, false); err != nil || present {
		t.Fatalf("without create: %v %v", present, err)
	}
	if ok, _ := ipt.ChainExists("filter", out.Name); ok {
		t.Fatal("chain created without create")
	}
	if present, err := out.EnsureJump(ipt, true); err != nil || !present {
		t.Fatalf("create: %v %v", present, err)
	}
	jump := `-A OUTPUT -m comment --comment "nfslab" -j NFSLAB-T`
	if got := ipt.Rules("filter", "OUTPUT"); got[1] != jump {
		t.Fatalf("OUTPUT %q", got)
	}
	// Steady state: one listing, nothing changed.
	clear(ipt.Calls)
	_, err := out.EnsureJump(ipt, true)
	must(t, err)
	if len(ipt.Calls) != 1 || ipt.Calls["List"] != 1 {
		t.Fatalf("steady state ran %v", ipt.Calls)
	}
	// Another tool inserts above it, and copies the jump further down.
	must(t, ipt.Insert("filter", "OUTPUT", 1, "-m", "state", "--state", "ESTABLISHED", "-j", "ACCEPT"))
	must(t, ipt.Append("filter", "OUTPUT", "-j", out.Name))
	_, err = out.EnsureJump(ipt, true)
	must(t, err)
	got := ipt.Rules("filter", "OUTPUT")
	if got[1] != jump || strings.Count(strings.Join(got, "\n"), "-j NFSLAB-T") != 1 {
		t.Fatalf("jump not alone at rule 1: %q", got)
	}
}

func TestRemoveIfEmpty(t *testing.T) {
	ipt := netfaulttest.NewIPTables("iptables")
	_, _ = ipt.ListChains("filter")
	before := ipt.Save()
	if removed, err := out.RemoveIfEmpty(ipt); err != nil || !removed {
		t.Fatalf("missing chain: %v %v", removed, err)
	}
	_, err := out.EnsureJump(ipt, true)
	must(t, err)
	must(t, ipt.Append("filter", out.Name, "-j", "DROP"))
	if removed, err := out.RemoveIfEmpty(ipt); err != nil || removed {
		t.Fatalf("chain with a rule: %v %v", removed, err)
	}
	must(t, ipt.Delete("filter", out.Name, "-j", "DROP"))
	if removed, err := out.RemoveIfEmpty(ipt); err != nil || !removed {
		t.Fatalf("empty chain: %v %v", removed, err)
	}
	if after := ipt.Save(); after != before {
		t.Fatalf("left:\n%s", after)
	}
	// iptables-nft's other way of saying "no such chain".
	ipt.Hook = func(op, table, chain string, args []string) error {
		if op == "List" {
			return &netfaulttest.Error{Status: 1, Msg: "iptables v1.8.9 (nf_tables): chain `NFSLAB-T' in table `filter' is incompatible, use 'nft' tool.\n"}
		}
		return nil
	}
	if removed, err := out.RemoveIfEmpty(ipt); err != nil || !removed {
		t.Fatalf("incompatible-style missing chain: %v %v", removed, err)
	}
}

func TestListIfExistsIsOneCommand(t *testing.T) {
	ipt := netfaulttest.NewIPTables("iptables")
	if lines, ok, err := ownchain.ListIfExists(ipt, "filter", out.Name); err != nil || ok || lines != nil {
		t.Fatalf("missing chain: %q %v %v", lines, ok, err)
	}
	_, err := out.EnsureJump(ipt, true)
	must(t, err)
	must(t, ipt.Append("filter", out.Name, "-j", "DROP"))
	ipt.Calls = map[string]int{}
	lines, ok, err := ownchain.ListIfExists(ipt, "filter", out.Name)
	if err != nil || !ok || len(lines) != 2 || !strings.Contains(lines[1], "-c 0 0") {
		t.Fatalf("chain with a rule: %q %v %v; want -N and the rule with counters", lines, ok, err)
	}
	if ipt.Calls["ListWithCounters"] != 1 || len(ipt.Calls) != 1 {
		t.Fatalf("calls %v; want one ListWithCounters", ipt.Calls)
	}
	// iptables-nft's other way of saying "no such chain" is exit status 1
	// too; any other failure (a held lock: 4) is an error.
	for status, wantErr := range map[int]bool{1: false, 4: true} {
		ipt.Hook = func(op, table, chain string, args []string) error {
			return &netfaulttest.Error{Status: status, Msg: "iptables v1.8.9 (nf_tables): chain `NFSLAB-T' in table `filter' is incompatible, use 'nft' tool.\n"}
		}
		_, ok, err := ownchain.ListIfExists(ipt, "filter", out.Name)
		if ok || (err != nil) != wantErr {
			t.Fatalf("exit status %d: exists %v, err %v; want error %v", status, ok, err, wantErr)
		}
	}
}
