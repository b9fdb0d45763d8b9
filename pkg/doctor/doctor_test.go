package doctor

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"testing"
	"time"
)

type fakeProbe struct {
	euid  int
	files map[string]string
	paths map[string]bool // tools on PATH
	out   map[string]string
	fail  map[string]error
	open  map[string]error
	kvm   error
	// qemuKVMFails is qemu's output when it dies at once under KVM.
	qemuKVMFails string
	runs         []string
	release      string
}

func goodProbe() *fakeProbe {
	p := &fakeProbe{
		files: map[string]string{
			"/proc/filesystems":       "nodev\tproc\nnodev\tnfs\nnodev\tnfs4\nnodev\tnfsd\nnodev\tfuse\n",
			"/run/podman/podman.sock": "",
			"/boot/config-6.1.0-test": "CONFIG_NET_SCH_HTB=m\nCONFIG_NET_SCH_NETEM=m\nCONFIG_NET_SCH_PRIO=m\nCONFIG_NET_SCH_TBF=m\n" +
				"CONFIG_NETFILTER_XT_TARGET_CLASSIFY=m\nCONFIG_NET_SCH_INGRESS=m\nCONFIG_IFB=m\nCONFIG_NET_CLS_U32=m\nCONFIG_NET_ACT_MIRRED=y\n",
		},
		paths: map[string]bool{},
		out: map[string]string{
			"iptables -V":                  "iptables v1.8.9 (nf_tables)\n",
			"java -version":                "openjdk version \"17.0.14\" 2025-01-21\nOpenJDK Runtime Environment\n",
			"javac -version":               "javac 17.0.14\n",
			"podman --version":             "podman version 4.3.1\n",
			"runc --version":               "runc version 1.1.5\n",
			"qemu-system-x86_64 --version": "QEMU emulator version 7.2.15\n",
		},
		fail: map[string]error{}, open: map[string]error{},
		release: "6.1.0-test",
	}
	for _, t := range []string{"iptables", "iptables-nft", "iptables-legacy", "ip", "rpc.nfsd", "rpc.mountd", "exportfs",
		"nsenter", "unshare", "mount.nfs", "fusermount3", "podman", "runc", "java", "javac", "qemu-system-x86_64"} {
		p.paths[t] = true
	}
	return p
}

func (p *fakeProbe) Geteuid() int { return p.euid }
func (p *fakeProbe) ReadFile(path string) ([]byte, error) {
	c, ok := p.files[path]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return []byte(c), nil
}
func (p *fakeProbe) Exists(path string) bool { _, ok := p.files[path]; return ok }
func (p *fakeProbe) LookPath(n string) (string, error) {
	if p.paths[n] {
		return "/usr/bin/" + n, nil
	}
	return "", exec.ErrNotFound
}
func (p *fakeProbe) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := strings.Join(append([]string{name}, args...), " ")
	p.runs = append(p.runs, cmd)
	if name == "qemu-system-x86_64" && strings.Contains(cmd, "-accel kvm") {
		if p.qemuKVMFails != "" {
			return []byte(p.qemuKVMFails), errors.New("signal: aborted")
		}
		<-ctx.Done() // a working paused VM runs until killed
		return nil, ctx.Err()
	}
	for k, err := range p.fail {
		if strings.Contains(cmd, k) {
			return nil, err
		}
	}
	return []byte(p.out[cmd]), nil
}
func (p *fakeProbe) OpenRW(path string) error { return p.open[path] }
func (p *fakeProbe) KVMCreateVM() error       { return p.kvm }
func (p *fakeProbe) KernelRelease() string    { return p.release }
func (p *fakeProbe) RandomSuffix() string     { return "cafe" }

func statuses(r Report) map[string]Status {
	m := map[string]Status{}
	for _, c := range r.Checks {
		m[c.Name] = c.Status
	}
	return m
}

func TestAllGood(t *testing.T) {
	p := goodProbe()
	r := run(context.Background(), p, 10*time.Millisecond)
	for _, c := range r.Checks {
		if c.Status != OK {
			t.Errorf("%s = %s (%s), want ok", c.Name, c.Status, c.Detail)
		}
	}
	for _, e := range ExperimentNames() {
		if err := r.Require(e); err != nil {
			t.Errorf("Require(%s) = %v", e, err)
		}
	}
	if c, _ := r.Get(CheckJava); !strings.Contains(c.Detail, "17.0.14") {
		t.Errorf("java detail %q", c.Detail)
	}
	if c, _ := r.Get(CheckIptables); !strings.Contains(c.Detail, "default backend nft") {
		t.Errorf("iptables detail %q", c.Detail)
	}
	// The matches are inserted in a throwaway namespace, which is removed.
	want := []string{
		"ip netns add nfslab-doctor-cafe",
		"ip netns exec nfslab-doctor-cafe iptables -w 5 -A OUTPUT -m statistic --mode random --probability 0.5 -j ACCEPT",
		"ip netns exec nfslab-doctor-cafe iptables -w 5 -A OUTPUT -m comment --comment nfslab:doctor -j ACCEPT",
		"ip netns exec nfslab-doctor-cafe iptables -w 5 -A OUTPUT -m time --datestop 2038-01-19T03:14:07 -j ACCEPT",
		"ip netns exec nfslab-doctor-cafe iptables -w 5 -A OUTPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT",
		"ip netns del nfslab-doctor-cafe",
	}
	var got []string
	for _, r := range p.runs {
		if strings.HasPrefix(r, "ip ") {
			got = append(got, r)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ip commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range p.runs {
		if strings.HasPrefix(r, "iptables ") && r != "iptables -V" {
			t.Errorf("iptables ran outside a namespace: %q", r)
		}
	}
}

func TestThisHostLikeFacts(t *testing.T) {
	p := goodProbe()
	p.files["/proc/filesystems"] = "nodev\tproc\nnodev\tfuse\n"
	p.fail["conntrack"] = errors.New("iptables: Couldn't load match `conntrack'")
	p.files[localIOParam] = "Y\n"
	p.kvm = errors.New("KVM_CREATE_VM: operation not supported")
	delete(p.files, "/run/podman/podman.sock")
	r := run(context.Background(), p, 10*time.Millisecond)
	s := statuses(r)
	for name, want := range map[string]Status{
		CheckNFSClient: Fail, CheckNFSServer: Fail, CheckMatchConntrack: Fail, CheckMatchStatistic: OK,
		CheckLocalIO: Warn, CheckKVM: Warn, CheckPodmanSocket: Fail, CheckFUSE: OK,
	} {
		if s[name] != want {
			t.Errorf("%s = %s, want %s", name, s[name], want)
		}
	}
	err := r.Require("nfs-host")
	if !errors.Is(err, ErrCannotRun) {
		t.Fatalf("Require(nfs-host) = %v", err)
	}
	for _, want := range []string{"nfs-client: kernel has no NFS client", "nfs-server", "lab VM"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Require error %q lacks %q", err, want)
		}
	}
	if err := r.Require("podman"); err == nil || !strings.Contains(err.Error(), "system service") {
		t.Errorf("Require(podman) = %v", err)
	}
	if err := r.Require("faultfs"); err != nil {
		t.Errorf("Require(faultfs) = %v", err)
	}
	if err := r.Require("vm"); err != nil {
		t.Errorf("Require(vm) with KVM broken = %v; tcg still works", err)
	}
	if c, _ := r.Get(CheckLocalIO); !strings.Contains(c.Fix, "echo N > /sys/module/nfs/parameters/localio_enabled") {
		t.Errorf("localio fix %q", c.Fix)
	}
}

// This host's kernel: htb, tbf, CLASSIFY, ingress and ifb built in, no
// netem, no prio (from /proc/config.gz). Limits can run, delays cannot.
func TestShapingOnThisHostsKernel(t *testing.T) {
	p := goodProbe()
	delete(p.files, "/boot/config-6.1.0-test")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("CONFIG_NET_SCH_HTB=y\n# CONFIG_NET_SCH_PRIO is not set\nCONFIG_NET_SCH_TBF=y\n# CONFIG_NET_SCH_NETEM is not set\n" +
		"CONFIG_NET_SCH_INGRESS=y\nCONFIG_NET_CLS_U32=y\nCONFIG_NET_ACT_MIRRED=y\nCONFIG_IFB=y\nCONFIG_NETFILTER_XT_TARGET_CLASSIFY=y\n"))
	_ = zw.Close()
	p.files["/proc/config.gz"] = gz.String()
	r := run(context.Background(), p, 10*time.Millisecond)
	s := statuses(r)
	for name, want := range map[string]Status{
		CheckQdiscHTB: OK, CheckQdiscNetem: Fail, CheckQdiscPrio: Warn, CheckQdiscTBF: OK, CheckClassify: OK, CheckIngressShape: OK,
	} {
		if s[name] != want {
			t.Errorf("%s = %s, want %s", name, s[name], want)
		}
	}
	if err := r.Require("netfault-limit"); err != nil {
		t.Errorf("Require(netfault-limit) = %v", err)
	}
	err := r.Require("netfault-delay")
	if !errors.Is(err, ErrCannotRun) || !strings.Contains(err.Error(), "CONFIG_NET_SCH_NETEM not set") || !strings.Contains(err.Error(), "lab VM") {
		t.Errorf("Require(netfault-delay) = %v", err)
	}
	// Without any configuration, a loaded module still counts.
	delete(p.files, "/proc/config.gz")
	p.files["/proc/modules"] = "sch_netem 32768 0 - Live 0x0\n"
	if c, _ := run(context.Background(), p, 10*time.Millisecond).Get(CheckQdiscNetem); c.Status != OK {
		t.Errorf("netem loaded: %+v", c)
	}
}

func TestNotRootAndMissingTools(t *testing.T) {
	p := goodProbe()
	p.euid = 1000
	for _, n := range []string{"java", "podman", "rpc.nfsd", "fusermount3"} {
		delete(p.paths, n)
	}
	p.open["/dev/fuse"] = fs.ErrPermission
	p.files["/proc/filesystems"] = "nodev\tproc\n"
	p.files["/lib/modules/6.1.0-test/modules.dep"] = "kernel/fs/nfs/nfs.ko: kernel/net/sunrpc/sunrpc.ko\n"
	r := run(context.Background(), p, 10*time.Millisecond)
	s := statuses(r)
	for name, want := range map[string]Status{
		CheckRoot: Fail, CheckMatchTime: Fail, CheckJava: Fail, CheckPodman: Fail, CheckNFSTools: Fail,
		CheckFUSE: Fail, CheckNFSClient: Warn, CheckNFSServer: Fail,
	} {
		if s[name] != want {
			t.Errorf("%s = %s, want %s", name, s[name], want)
		}
	}
	for _, r := range p.runs {
		if strings.HasPrefix(r, "ip netns") {
			t.Errorf("non-root doctor ran %q", r)
		}
	}
	err := r.Require("faultfs")
	for _, want := range []string{"root:", "fuse:", "java:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Require(faultfs) = %v, want %q", err, want)
		}
	}
}

func TestRequireUnknown(t *testing.T) {
	err := Report{}.Require("nfs-moon")
	if !errors.Is(err, ErrUnknownExperiment) || !strings.Contains(err.Error(), "faultfs, netfault, netfault-delay, netfault-limit, nfs-host, podman, vm") {
		t.Fatalf("Require(unknown) = %v", err)
	}
	if err := (Report{}).Require("vm"); err == nil || !strings.Contains(err.Error(), "qemu: not checked") {
		t.Fatalf("Require on empty report = %v", err)
	}
	_ = fmt.Sprint()
}

func TestKVMOpensButQemuFails(t *testing.T) {
	p := goodProbe()
	p.qemuKVMFails = "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"
	r := run(context.Background(), p, 10*time.Millisecond)
	c, _ := r.Get(CheckKVM)
	if c.Status != Warn || !strings.Contains(c.Detail, "failed to set MSR 0x10a") || !strings.Contains(c.Detail, "tcg") {
		t.Errorf("kvm check %+v", c)
	}
	if err := r.Require("vm"); err != nil {
		t.Errorf("Require(vm) = %v; tcg still works", err)
	}
}

func TestLegacyBackendWarns(t *testing.T) {
	p := goodProbe()
	p.out["iptables -V"] = "iptables v1.8.9 (legacy)\n"
	r := run(context.Background(), p, 10*time.Millisecond)
	if c, _ := r.Get(CheckIptables); c.Status != Warn || c.Fix == "" {
		t.Errorf("legacy backend: %+v", c)
	}
}
