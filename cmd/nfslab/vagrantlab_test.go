package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
)

// TestVagrantLabLibvirtInNetns brings up scripts/vagrant-lab's libvirtd in
// its own network namespace, starts a NAT network there (bridge, dnsmasq,
// firewall rules) and checks that none of it reaches this machine's
// namespace, then that teardown ends libvirtd and leaves nothing.
func TestVagrantLabLibvirtInNetns(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "libvirtd", "virsh", "dnsmasq", "ip", "unshare", "nsenter", "iptables-save")
	ns := fmt.Sprintf("nfslab-vgt%d", os.Getpid())
	state := filepath.Join(t.TempDir(), "state")
	env := append(os.Environ(), "NFSLAB_VAGRANT_NS="+ns, "NFSLAB_VAGRANT_STATE="+state)
	script, _ := filepath.Abs("../../scripts/vagrant-lab")
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, script, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	hostRules := func() int {
		out, _ := exec.Command("iptables-save").Output()
		return strings.Count(string(out), "LIBVIRT")
	}
	before := hostRules()
	t.Cleanup(func() {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			out, _ := run("teardown")
			t.Logf("cleanup teardown:\n%s", out)
		}
	})
	if out, err := run("start"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	pidb, err := os.ReadFile(filepath.Join(state, "libvirtd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(pidb))
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	daemonNet, _ := os.Readlink("/proc/" + pid + "/ns/net")
	if daemonNet == "" || daemonNet == hostNet {
		t.Fatalf("libvirtd (pid %s) net namespace %q, host's %q", pid, daemonNet, hostNet)
	}
	xml := filepath.Join(state, "t.xml")
	os.WriteFile(xml, []byte(`<network><name>nfslabt</name><forward mode='nat'/><bridge name='virbr77'/>`+
		`<ip address='192.168.177.1' netmask='255.255.255.0'><dhcp><range start='192.168.177.10' end='192.168.177.20'/></dhcp></ip></network>`), 0o644)
	if out, err := run("virsh", "net-create", xml); err != nil {
		t.Fatalf("net-create: %v\n%s", err, out)
	}
	if err := exec.Command("ip", "-n", ns, "link", "show", "virbr77").Run(); err != nil {
		t.Fatalf("bridge not in the netns: %v", err)
	}
	if err := exec.Command("ip", "link", "show", "virbr77").Run(); err == nil {
		t.Fatal("libvirt's bridge is in the host namespace")
	}
	nsRules, _ := exec.Command("ip", "netns", "exec", ns, "iptables-save").Output()
	if !strings.Contains(string(nsRules), "-A LIBVIRT_") {
		t.Fatalf("no libvirt rules in the netns (is the network really up?):\n%s", nsRules)
	}
	if after := hostRules(); after != before {
		t.Fatalf("LIBVIRT lines in the host's iptables-save: %d before, %d after", before, after)
	}
	out, err := run("teardown")
	if err != nil {
		t.Fatalf("teardown: %v\n%s", err, out)
	}
	if !strings.Contains(out, "check: nothing left") {
		t.Fatalf("teardown did not check:\n%s", out)
	}
	if _, err := os.Stat("/run/netns/" + ns); err == nil {
		t.Fatal("netns left")
	}
	if _, err := os.Stat("/proc/" + pid); err == nil {
		t.Fatalf("libvirtd pid %s still runs", pid)
	}
	if _, err := os.Stat(state); err == nil {
		t.Fatal("state dir left")
	}
}
