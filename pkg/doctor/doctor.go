package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Status of a check.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn" // works, with a caveat
	Fail Status = "fail" // the feature is not usable
)

// Check is one finding.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Report is the result of Run.
type Report struct {
	Checks []Check `json:"checks"`
}

// Get returns the check called name.
func (r Report) Get(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Check names.
const (
	CheckRoot           = "root"
	CheckIptables       = "iptables"
	CheckMatchStatistic = "iptables-statistic"
	CheckMatchComment   = "iptables-comment"
	CheckMatchTime      = "iptables-time"
	CheckMatchConntrack = "iptables-conntrack"
	CheckNFSClient      = "nfs-client"
	CheckNFSServer      = "nfs-server"
	CheckNFSTools       = "nfs-tools"
	CheckLocalIO        = "nfs-localio"
	CheckFUSE           = "fuse"
	CheckPodman         = "podman"
	CheckPodmanSocket   = "podman-socket"
	CheckRunc           = "runc"
	CheckJava           = "java"
	CheckJavac          = "javac"
	CheckQemu           = "qemu"
	CheckKVM            = "kvm"
	// Shaping faults (delay, limit): see kernelFeatures.
	CheckQdiscHTB     = "qdisc-htb"
	CheckQdiscNetem   = "qdisc-netem"
	CheckQdiscPrio    = "qdisc-prio"
	CheckQdiscTBF     = "qdisc-tbf"
	CheckClassify     = "iptables-classify"
	CheckIngressShape = "tc-ingress-ifb"
)

// Experiments maps each experiment to the checks that must not fail.
var Experiments = map[string][]string{
	// Network faults on this host's own kernel.
	"netfault": {CheckRoot, CheckIptables, CheckMatchStatistic, CheckMatchComment, CheckMatchTime},
	// Bandwidth limits (htb class, CLASSIFY rule).
	"netfault-limit": {CheckRoot, CheckIptables, CheckMatchComment, CheckMatchTime, CheckQdiscHTB, CheckClassify},
	// Delays (netem under nfslab's htb class).
	"netfault-delay": {CheckRoot, CheckIptables, CheckMatchComment, CheckMatchTime, CheckQdiscHTB, CheckClassify, CheckQdiscNetem},
	// NFS on this host: knfsd in a namespace, a kernel mount, faults between.
	"nfs-host": {CheckRoot, CheckIptables, CheckMatchStatistic, CheckMatchComment, CheckMatchTime,
		CheckNFSClient, CheckNFSServer, CheckNFSTools},
	// The FUSE fault filesystem with the JVM journal probe.
	"faultfs": {CheckRoot, CheckFUSE, CheckJava, CheckJavac},
	// The lab VM (KVM is optional: without it qemu runs with -accel tcg).
	"vm": {CheckQemu},
	// Zeebe in podman.
	"podman": {CheckRoot, CheckPodman, CheckPodmanSocket, CheckRunc},
}

// ExperimentNames lists the experiments Require knows, sorted.
func ExperimentNames() []string {
	var n []string
	for k := range Experiments {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// ErrUnknownExperiment is returned by Require for a name it does not know.
var ErrUnknownExperiment = errors.New("unknown experiment")

// ErrCannotRun is returned by Require when a needed check failed.
var ErrCannotRun = errors.New("cannot run here")

// Require returns nil when experiment can run on this machine, else an
// error naming every failed check and its fix.
func (r Report) Require(experiment string) error {
	need, ok := Experiments[experiment]
	if !ok {
		return fmt.Errorf("%w %q (known: %s)", ErrUnknownExperiment, experiment, strings.Join(ExperimentNames(), ", "))
	}
	var why []string
	for _, n := range need {
		c, ok := r.Get(n)
		switch {
		case !ok:
			why = append(why, n+": not checked")
		case c.Status == Fail:
			s := n + ": " + c.Detail
			if c.Fix != "" {
				s += " (fix: " + c.Fix + ")"
			}
			why = append(why, s)
		}
	}
	if len(why) > 0 {
		return fmt.Errorf("experiment %q %w: %s", experiment, ErrCannotRun, strings.Join(why, "; "))
	}
	return nil
}

// Probe is every side effect the checks have. NewProbe returns the real one.
type Probe interface {
	Geteuid() int
	ReadFile(path string) ([]byte, error)
	Exists(path string) bool
	LookPath(name string) (string, error)
	// Run runs a command and returns stdout and stderr combined.
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
	// OpenRW opens path read-write and closes it.
	OpenRW(path string) error
	// KVMCreateVM opens /dev/kvm and creates (and closes) a VM.
	KVMCreateVM() error
	// KernelRelease is uname -r.
	KernelRelease() string
	// RandomSuffix names throwaway objects (namespaces).
	RandomSuffix() string
}

// Run runs every check. It takes a few seconds: the KVM check keeps a
// paused qemu up for qemuKVMProbe.
func Run(ctx context.Context, p Probe) Report { return run(ctx, p, qemuKVMProbe) }

func run(ctx context.Context, p Probe, kvmProbe time.Duration) Report {
	var r Report
	add := func(cs ...Check) { r.Checks = append(r.Checks, cs...) }
	root := p.Geteuid() == 0
	if root {
		add(Check{Name: CheckRoot, Status: OK, Detail: "running as root"})
	} else {
		add(Check{Name: CheckRoot, Status: Fail, Detail: fmt.Sprintf("running as uid %d", p.Geteuid()),
			Fix: "run nfslab as root (sudo): it changes firewall rules, namespaces and mounts"})
	}
	add(checkIptables(ctx, p))
	add(checkMatches(ctx, p, root)...)
	add(checkNFS(ctx, p)...)
	add(checkKernelFeatures(p)...)
	add(checkLocalIO(p))
	add(checkFUSE(p))
	add(checkPodman(ctx, p)...)
	add(checkTool(ctx, p, CheckRunc, "runc", []string{"--version"}, "apt-get install runc (podman 4.3 with the v5 bindings needs runc)"))
	add(checkJava(ctx, p, CheckJava, "java"), checkJava(ctx, p, CheckJavac, "javac"))
	add(checkTool(ctx, p, CheckQemu, "qemu-system-x86_64", []string{"--version"}, "apt-get install qemu-system-x86"))
	add(checkKVM(ctx, p, kvmProbe))
	return r
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func checkTool(ctx context.Context, p Probe, name, tool string, versionArgs []string, fix string) Check {
	path, err := p.LookPath(tool)
	if err != nil {
		return Check{Name: name, Status: Fail, Detail: tool + " not found on PATH", Fix: fix}
	}
	out, err := p.Run(ctx, tool, versionArgs...)
	if err != nil {
		return Check{Name: name, Status: Fail, Detail: fmt.Sprintf("%s %s failed: %v", path, strings.Join(versionArgs, " "), err), Fix: fix}
	}
	return Check{Name: name, Status: OK, Detail: path + ": " + firstLine(out)}
}

func checkIptables(ctx context.Context, p Probe) Check {
	c := Check{Name: CheckIptables}
	if _, err := p.LookPath("iptables"); err != nil {
		c.Status, c.Detail, c.Fix = Fail, "iptables not found on PATH", "apt-get install iptables"
		return c
	}
	out, err := p.Run(ctx, "iptables", "-V")
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, fmt.Sprintf("iptables -V failed: %v", err), "apt-get install --reinstall iptables"
		return c
	}
	v := firstLine(out)
	backend := "legacy"
	if strings.Contains(v, "nf_tables") {
		backend = "nft"
	}
	var others []string
	for _, alt := range []string{"iptables-nft", "iptables-legacy"} {
		if _, err := p.LookPath(alt); err == nil {
			others = append(others, alt)
		}
	}
	c.Status = OK
	c.Detail = fmt.Sprintf("%s: default backend %s", v, backend)
	if len(others) > 0 {
		c.Detail += "; available: " + strings.Join(others, ", ")
	}
	if backend == "legacy" {
		c.Status = Warn
		c.Fix = "nfslab works with either backend, but its rules must use the same one as other tools on this host (update-alternatives --config iptables)"
	}
	return c
}

// matchTests are the iptables matches nfslab's faults use, as the rule
// arguments that exercise each one.
var matchTests = []struct {
	check, module string
	args          []string
}{
	{CheckMatchStatistic, "xt_statistic", []string{"-m", "statistic", "--mode", "random", "--probability", "0.5"}},
	{CheckMatchComment, "xt_comment", []string{"-m", "comment", "--comment", "nfslab:doctor"}},
	{CheckMatchTime, "xt_time", []string{"-m", "time", "--datestop", "2038-01-19T03:14:07"}},
	{CheckMatchConntrack, "xt_conntrack", []string{"-m", "conntrack", "--ctstate", "ESTABLISHED"}},
}

// checkMatches inserts one rule per match into OUTPUT of a throwaway
// network namespace: the only proof that the kernel and the userspace
// extension both work. The machine's own firewall is never touched.
func checkMatches(ctx context.Context, p Probe, root bool) []Check {
	var out []Check
	skip := func(detail, fix string) []Check {
		for _, m := range matchTests {
			out = append(out, Check{Name: m.check, Status: Fail, Detail: detail, Fix: fix})
		}
		return out
	}
	if !root {
		return skip("not checked: needs root to create a throwaway network namespace", "run nfslab doctor as root")
	}
	for _, t := range []string{"ip", "iptables"} {
		if _, err := p.LookPath(t); err != nil {
			return skip("not checked: "+t+" not found", "apt-get install iproute2 iptables")
		}
	}
	ns := "nfslab-doctor-" + p.RandomSuffix()
	if _, err := p.Run(ctx, "ip", "netns", "add", ns); err != nil {
		return skip(fmt.Sprintf("not checked: creating a throwaway network namespace failed: %v", err),
			"nfslab needs network namespaces (CONFIG_NET_NS) and iproute2")
	}
	defer func() { _, _ = p.Run(context.WithoutCancel(ctx), "ip", "netns", "del", ns) }()
	for _, m := range matchTests {
		args := append([]string{"netns", "exec", ns, "iptables", "-w", "5", "-A", "OUTPUT"}, m.args...)
		args = append(args, "-j", "ACCEPT")
		if _, err := p.Run(ctx, "ip", args...); err != nil {
			out = append(out, Check{Name: m.check, Status: Fail,
				Detail: fmt.Sprintf("inserting a rule with %s in a throwaway namespace failed: %v", strings.Join(m.args[:2], " "), err),
				Fix:    fmt.Sprintf("modprobe %s, or use a kernel with it (the lab VM has it)", m.module)})
			continue
		}
		out = append(out, Check{Name: m.check, Status: OK, Detail: strings.Join(m.args, " ") + ": rule inserted in a throwaway namespace"})
	}
	return out
}

// fsHas reports whether /proc/filesystems lists one of names.
func fsHas(p Probe, names ...string) bool {
	b, err := p.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, n := range names {
			if f[len(f)-1] == n {
				return true
			}
		}
	}
	return false
}

// moduleAvailable reports whether modules.dep lists the module file.
func moduleAvailable(p Probe, rel string) bool {
	b, err := p.ReadFile("/lib/modules/" + p.KernelRelease() + "/modules.dep")
	return err == nil && strings.Contains(string(b), rel)
}

func checkNFS(ctx context.Context, p Probe) []Check {
	vmFix := "run NFS experiments in the lab VM (`nfslab vm`), whose Debian kernel has NFS"
	client := Check{Name: CheckNFSClient}
	switch {
	case fsHas(p, "nfs", "nfs4") || p.Exists("/sys/module/nfs"):
		client.Status, client.Detail = OK, "kernel NFS client present (nfs/nfs4 in /proc/filesystems)"
	case moduleAvailable(p, "kernel/fs/nfs/nfs.ko"):
		client.Status, client.Detail, client.Fix = Warn, "NFS client module available but not loaded", "modprobe nfs (nfslab's mount loads it on demand)"
	default:
		client.Status, client.Detail, client.Fix = Fail, "kernel has no NFS client (no nfs in /proc/filesystems, no nfs module for "+p.KernelRelease()+")", vmFix
	}
	server := Check{Name: CheckNFSServer}
	switch {
	case fsHas(p, "nfsd") || p.Exists("/sys/module/nfsd"):
		server.Status, server.Detail = OK, "kernel NFS server present (nfsd)"
	case moduleAvailable(p, "kernel/fs/nfsd/nfsd.ko"):
		server.Status, server.Detail, server.Fix = Warn, "nfsd module available but not loaded", "modprobe nfsd (nfslab nfs-server start loads it)"
	default:
		server.Status, server.Detail, server.Fix = Fail, "kernel has no NFS server (no nfsd in /proc/filesystems, no nfsd module)", vmFix
	}
	tools := Check{Name: CheckNFSTools}
	var missing []string
	for _, t := range []string{"rpc.nfsd", "rpc.mountd", "exportfs", "nsenter", "unshare"} {
		if _, err := p.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		tools.Status, tools.Detail, tools.Fix = Fail, "missing "+strings.Join(missing, ", "), "apt-get install nfs-kernel-server util-linux"
	} else {
		tools.Status, tools.Detail = OK, "rpc.nfsd, rpc.mountd, exportfs, nsenter, unshare found"
	}
	if _, err := p.LookPath("mount.nfs"); err != nil && tools.Status == OK {
		tools.Detail += "; mount.nfs missing (only needed for the NFSv3 helper fallback: apt-get install nfs-common)"
	}
	return []Check{client, server, tools}
}

const localIOParam = "/sys/module/nfs/parameters/localio_enabled"

func checkLocalIO(p Probe) Check {
	c := Check{Name: CheckLocalIO}
	b, err := p.ReadFile(localIOParam)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.Status, c.Detail = OK, "no "+localIOParam+" (kernel < 6.12 or nfs not loaded): a local client always uses the network"
	case err != nil:
		c.Status, c.Detail = Warn, fmt.Sprintf("reading %s: %v", localIOParam, err)
	case strings.TrimSpace(string(b)) == "Y":
		c.Status = Warn
		c.Detail = "NFS LOCALIO is on: a client mounting a knfsd on this host bypasses the network, so network faults match nothing"
		c.Fix = "echo N > " + localIOParam + " before mounting (or pass --disable-localio)"
	default:
		c.Status, c.Detail = OK, "NFS LOCALIO is off"
	}
	return c
}

func checkFUSE(p Probe) Check {
	c := Check{Name: CheckFUSE}
	if err := p.OpenRW("/dev/fuse"); err != nil {
		c.Status, c.Detail, c.Fix = Fail, fmt.Sprintf("cannot open /dev/fuse: %v", err), "modprobe fuse; in a container, pass --device /dev/fuse"
		return c
	}
	c.Status, c.Detail = OK, "/dev/fuse opens"
	if _, err := p.LookPath("fusermount3"); err != nil {
		c.Status = Warn
		c.Detail += "; fusermount3 not found (root mounts directly, others cannot)"
		c.Fix = "apt-get install fuse3"
	} else {
		c.Detail += "; fusermount3 found"
	}
	return c
}

// podmanSockets are the rootful API sockets nfslab's podman client tries.
var podmanSockets = []string{"/run/podman/podman.sock"}

func checkPodman(ctx context.Context, p Probe) []Check {
	pc := checkTool(ctx, p, CheckPodman, "podman", []string{"--version"}, "apt-get install podman runc")
	sc := Check{Name: CheckPodmanSocket}
	for _, s := range podmanSockets {
		if p.Exists(s) {
			sc.Status, sc.Detail = OK, s+" exists"
			return []Check{pc, sc}
		}
	}
	sc.Status = Fail
	sc.Detail = "no podman API socket at " + strings.Join(podmanSockets, ", ")
	sc.Fix = "systemctl enable --now podman.socket, or: podman --runtime runc system service --time=0 unix:///run/podman/podman.sock &"
	return []Check{pc, sc}
}

var javaVersion = regexp.MustCompile(`(?:version "|javac )([0-9][0-9._+a-z-]*)`)

func checkJava(ctx context.Context, p Probe, name, tool string) Check {
	c := Check{Name: name}
	fix := "apt-get install openjdk-17-jdk-headless"
	path, err := p.LookPath(tool)
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, tool+" not found on PATH", fix
		return c
	}
	out, err := p.Run(ctx, tool, "-version") // both print to stderr
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, fmt.Sprintf("%s -version failed: %v", path, err), fix
		return c
	}
	m := javaVersion.FindStringSubmatch(string(out))
	if m == nil {
		c.Status, c.Detail = Warn, fmt.Sprintf("%s: cannot read the version from %q", path, firstLine(out))
		return c
	}
	c.Status, c.Detail = OK, fmt.Sprintf("%s version %s", path, m[1])
	return c
}

// qemuKVMArgs start a paused VM with KVM and the CPU model the lab VM uses:
// opening /dev/kvm can succeed while qemu still fails to set up a vCPU
// (on this CI host: "failed to set MSR 0x10a").
var qemuKVMArgs = []string{"-accel", "kvm", "-machine", "q35", "-cpu", "max", "-nodefaults",
	"-display", "none", "-monitor", "none", "-serial", "none", "-S"}

// qemuKVMProbe is how long a paused KVM VM must stay up to count as working.
const qemuKVMProbe = 2 * time.Second

func checkKVM(ctx context.Context, p Probe, probe time.Duration) Check {
	c := Check{Name: CheckKVM}
	tcg := "the lab VM runs with -accel tcg (slower, but works)"
	fix := "enable virtualization (VT-x/AMD-V, nested virtualization in a cloud VM) and give access to /dev/kvm"
	if err := p.KVMCreateVM(); err != nil {
		c.Status, c.Detail, c.Fix = Warn, fmt.Sprintf("KVM unusable (%v): %s", err, tcg), fix
		return c
	}
	if _, err := p.LookPath("qemu-system-x86_64"); err != nil {
		c.Status, c.Detail = Warn, "/dev/kvm creates a VM; qemu not installed to try it further"
		return c
	}
	qctx, cancel := context.WithTimeout(ctx, probe)
	defer cancel()
	out, err := p.Run(qctx, "qemu-system-x86_64", qemuKVMArgs...)
	if qctx.Err() == nil || ctx.Err() != nil {
		// qemu exited on its own before the probe time: KVM failed.
		detail := firstLine(out)
		if err != nil && detail == "" {
			detail = err.Error()
		}
		c.Status, c.Detail, c.Fix = Warn, fmt.Sprintf("/dev/kvm opens but qemu -accel kvm -cpu max fails (%s): %s", detail, tcg), fix
		return c
	}
	c.Status, c.Detail = OK, "qemu -accel kvm -cpu max starts: the lab VM can use KVM"
	return c
}
