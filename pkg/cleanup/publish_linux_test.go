package cleanup

import (
	"context"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/publish"
)

var publishSaveNoise = regexp.MustCompile(`(?m)^#.*\n|\[\d+:\d+\]`)

// TestPrivSweepRemovesCrashedPublish: a run that published 127.0.0.1:2049
// in a test namespace and was killed leaves its nat chains, DNAT,
// MASQUERADE and route_localnet=1 behind; one Sweep (a new process: only
// the record directory is shared) removes them and restores
// route_localnet, and leaves the user's nat rule alone.
func TestPrivSweepRemovesCrashedPublish(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "iptables", "iptables-save")
	ns := testnet.RandomName("nfslt-clnpub")
	testnet.NewNetns(t, ns)
	testnet.MustExec(t, ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "80")
	save := func() string { return publishSaveNoise.ReplaceAllString(testnet.MustExec(t, ns, "iptables-save"), "") }
	localnet := func() string {
		return strings.TrimSpace(testnet.MustExec(t, ns, "cat", "/proc/sys/net/ipv4/conf/all/route_localnet"))
	}
	before := save()
	state := t.TempDir()
	ctx := context.Background()
	if _, err := publish.New(publish.Options{StateDir: state}).Publish(ctx, publish.Spec{ID: "crashed-run", Netns: ns,
		From: netip.MustParseAddrPort("127.0.0.1:2049"), To: netip.MustParseAddrPort("10.213.0.2:2049")}); err != nil {
		t.Fatal(err)
	}
	if s := save(); !strings.Contains(s, "nfslab:publish-crashed-run") || localnet() != "1" {
		t.Fatalf("premise: publish not in place (route_localnet %s):\n%s", localnet(), s)
	}
	rep, err := Sweep(ctx, Options{Publish: publish.New(publish.Options{StateDir: state}), Namespaces: []string{ns}})
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if got := rep.Step(StepPublish).Removed; len(got) != 1 || got[0] != "publish-crashed-run (netns "+ns+")" {
		t.Fatalf("publish step removed %q", got)
	}
	if after := save(); after != before {
		t.Fatalf("iptables-save after sweep:\n%s\nbefore:\n%s", after, before)
	}
	if v := localnet(); v != "0" {
		t.Fatalf("route_localnet %s after sweep, want 0", v)
	}
	// Not found is done.
	rep, err = Sweep(ctx, Options{Publish: publish.New(publish.Options{StateDir: state}), Namespaces: []string{ns}})
	if err != nil || len(rep.Step(StepPublish).Removed) != 0 {
		t.Fatalf("second sweep: %+v %v", rep.Step(StepPublish), err)
	}
}
