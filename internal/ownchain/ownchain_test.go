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
