package vm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
)

func testSpec() ImageSpec {
	g, _ := LookupGuest("bookworm")
	return g.Spec([]byte("#!/bin/sh\n"), 4096)
}

func TestKeyIgnoresPackageOrderAndDuplicates(t *testing.T) {
	a := testSpec()
	b := testSpec()
	b.Packages = append([]string{"procps"}, slices.Clone(a.Packages)...)
	slices.Reverse(b.Packages)
	if a.Key() != b.Key() {
		t.Fatalf("order or duplicates changed the key: %s vs %s", a.Key(), b.Key())
	}
	if len(a.Key()) != 16 {
		t.Fatalf("key %q is not 16 hex digits", a.Key())
	}
}

func TestKeyChangesWithEveryInput(t *testing.T) {
	base := testSpec()
	muts := map[string]func(*ImageSpec){
		"suite":    func(s *ImageSpec) { s.Suite = "trixie" },
		"packages": func(s *ImageSpec) { s.Packages = append(slices.Clone(s.Packages), "strace") },
		"init":     func(s *ImageSpec) { s.GuestInit = []byte("#!/bin/sh\necho changed\n") },
		"disk":     func(s *ImageSpec) { s.DiskSizeMB = 8192 },
	}
	for name, m := range muts {
		s := testSpec()
		m(&s)
		if s.Key() == base.Key() {
			t.Errorf("changing %s kept the key %s", name, s.Key())
		}
	}
}

func TestSpecValidate(t *testing.T) {
	bad := map[string]func(*ImageSpec){
		"empty suite":   func(s *ImageSpec) { s.Suite = "" },
		"slash suite":   func(s *ImageSpec) { s.Suite = "../x" },
		"no packages":   func(s *ImageSpec) { s.Packages = nil },
		"comma package": func(s *ImageSpec) { s.Packages = []string{"a,b"} },
		"no init":       func(s *ImageSpec) { s.GuestInit = nil },
		"small disk":    func(s *ImageSpec) { s.DiskSizeMB = 100 },
	}
	for name, m := range bad {
		s := testSpec()
		m(&s)
		if err := s.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	if err := testSpec().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBootValidate(t *testing.T) {
	for _, b := range []BootConfig{{512, 2, "auto"}, {2048, 0, "auto"}, {2048, 2, "hvf"}} {
		err := b.Validate()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: got %v", b, err)
		}
	}
	if err := DefaultBoot().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDetectMirror(t *testing.T) {
	cases := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"deb822 skips security and disabled", fstest.MapFS{
			"etc/apt/sources.list.d/debian.sources": {Data: []byte(`Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src deb
# comment
URIs: http://deb.example/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`)},
		}, "http://deb.example/debian"},
		{"one-line with options wins over .d", fstest.MapFS{
			"etc/apt/sources.list":                  {Data: []byte("# x\ndeb-src http://src.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] https://one.example/debian bookworm main non-free\n")},
			"etc/apt/sources.list.d/debian.sources": {Data: []byte("Types: deb\nURIs: http://two.example/debian\nSuites: bookworm\nComponents: main\n")},
		}, "https://one.example/debian"},
		{"needs main", fstest.MapFS{
			"etc/apt/sources.list.d/x.list": {Data: []byte("deb http://a.example/debian bookworm contrib\ndeb http://b.example/debian bookworm main\n")},
		}, "http://b.example/debian"},
		{"ignores file and cdrom URIs", fstest.MapFS{
			"etc/apt/sources.list": {Data: []byte("deb cdrom:[Debian]/ bookworm main\ndeb file:/srv/repo bookworm main\ndeb http://c.example/debian bookworm main\n")},
		}, "http://c.example/debian"},
	}
	for _, c := range cases {
		got, err := DetectMirror(c.files, "bookworm")
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	_, err := DetectMirror(fstest.MapFS{"etc/apt/sources.list": {Data: []byte("deb http://x/ubuntu jammy main\ndeb http://x/debian trixie contrib\n")}}, "bookworm")
	if !errors.Is(err, ErrNoMirror) || !strings.Contains(err.Error(), "bookworm") {
		t.Fatalf("no Debian source with main: got %v", err)
	}
}

// A bookworm host lists only bookworm: the trixie guest comes from the
// same mirror (never the security archive); a source naming the suite
// itself still wins.
func TestDetectMirrorOtherRelease(t *testing.T) {
	host := fstest.MapFS{"etc/apt/sources.list.d/debian.sources": {Data: []byte(`Types: deb
URIs: http://sec.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://deb.example/debian/
Suites: bookworm bookworm-updates
Components: main
`)}}
	for _, g := range GuestNames() {
		if got, err := DetectMirror(host, g); err != nil || got != "http://deb.example/debian" {
			t.Errorf("%s: got %q, %v; want the host's mirror", g, got, err)
		}
	}
	host["etc/apt/sources.list"] = &fstest.MapFile{Data: []byte("deb http://t.example/debian trixie main\n")}
	if got, err := DetectMirror(host, "trixie"); err != nil || got != "http://t.example/debian" {
		t.Errorf("trixie listed: got %q, %v", got, err)
	}
}

func TestLookupGuest(t *testing.T) {
	if GuestNames()[0] != DefaultGuest {
		t.Fatalf("the default %s is not listed first: %v", DefaultGuest, GuestNames())
	}
	jre := map[string]string{"trixie": "openjdk-21-jre-headless", "bookworm": "openjdk-17-jre-headless"}
	for name, want := range jre {
		g, err := LookupGuest(name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(g.Packages, want) || !slices.Contains(g.Packages, "nfs-kernel-server") {
			t.Errorf("%s lacks %s or knfsd: %v", name, want, g.Packages)
		}
		s := g.Spec([]byte("#!/bin/sh\n"), 4096)
		if err := s.Validate(); err != nil || s.Suite != name {
			t.Errorf("%s: spec %+v: %v", name, s, err)
		}
	}
	if g, _ := LookupGuest("trixie"); slices.Contains(g.Packages, "openjdk-17-jre-headless") {
		t.Error("trixie names bookworm's JRE (trixie has only openjdk-21)")
	}
	// The spec owns its package list: changing it leaves the flavour alone.
	g, _ := LookupGuest("bookworm")
	s := g.Spec([]byte("x"), 4096)
	s.Packages[0] = "changed"
	if g2, _ := LookupGuest("bookworm"); g2.Packages[0] == "changed" {
		t.Error("Spec shares the flavour's package slice")
	}
	for _, bad := range []string{"", "sid", "Trixie", "book worm"} {
		if _, err := LookupGuest(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("%q: got %v, want ErrInvalid naming it", bad, err)
		}
	}
}

// The bookworm image's key is that of its package list alone (the one
// before flavours existed, plus dmsetup and e2fsprogs for server-eio, plus
// podman, runc, netavark and catatonit for the containers): it moves only
// when the list does.
func TestBookwormKeyUnchanged(t *testing.T) {
	g, _ := LookupGuest("bookworm")
	old := ImageSpec{Suite: "bookworm", Packages: []string{"linux-image-amd64", "nfs-kernel-server", "nfs-common", "iptables",
		"iproute2", "openjdk-17-jre-headless", "kmod", "procps", "util-linux", "dmsetup", "e2fsprogs",
		"podman", "runc", "netavark", "catatonit"}, GuestInit: []byte("x"), DiskSizeMB: 4096}
	if g.Spec([]byte("x"), 4096).Key() != old.Key() {
		t.Fatal("the bookworm flavour's key moved")
	}
}

type fakeProber struct {
	works map[string]bool // cpu model -> prints the banner
	calls []string
}

func (f *fakeProber) Prints(_ context.Context, args []string, want string, _ time.Duration) (bool, string, error) {
	cpu := args[slices.Index(args, "-cpu")+1]
	f.calls = append(f.calls, args[slices.Index(args, "-accel")+1]+"/"+cpu)
	if want != probeWant || !slices.Contains(args, "-kernel") {
		return false, "", errors.New("probe does not boot the kernel")
	}
	if f.works[cpu] {
		return true, "", nil
	}
	return false, "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nAborted", nil
}

func TestChooseAccel(t *testing.T) {
	ctx := context.Background()
	yes := func() bool { return true }
	no := func() bool { return false }
	cases := []struct {
		name  string
		mode  string
		kvm   KVMAvailable
		works map[string]bool
		want  string
		calls int
		err   bool
	}{
		{"kvm works", "auto", yes, map[string]bool{"max": true}, "kvm/max", 1, false},
		{"msr workaround", "auto", yes, map[string]bool{"max,-arch-capabilities": true}, "kvm/max,-arch-capabilities", 2, false},
		{"kvm broken falls back to tcg", "auto", yes, nil, "tcg/max", 2, false},
		{"no /dev/kvm", "auto", no, map[string]bool{"max": true}, "tcg/max", 0, false},
		{"tcg forced", "tcg", yes, map[string]bool{"max": true}, "tcg/max", 0, false},
		{"kvm forced but broken", "kvm", yes, nil, "", 2, true},
	}
	for _, c := range cases {
		p := &fakeProber{works: c.works}
		a, notes, err := ChooseAccel(ctx, c.mode, "/img/vmlinuz", c.kvm, p, time.Second)
		if c.err {
			if err == nil {
				t.Errorf("%s: no error", c.name)
			}
			continue
		}
		if err != nil || a.Name+"/"+a.CPU != c.want || len(p.calls) != c.calls {
			t.Errorf("%s: got %v %v calls=%v, want %s with %d probes", c.name, a, err, p.calls, c.want, c.calls)
		}
		if c.want == "tcg/max" && c.mode == "auto" && len(notes) == 0 {
			t.Errorf("%s: fallback gives no reason", c.name)
		}
		if !strings.Contains(a.CPU, "max") {
			t.Errorf("%s: cpu %q lacks max (SSE4.2 for the JVM's CRC32C stub)", c.name, a.CPU)
		}
		// TCG in one host thread, or the JVM's code patching races (qemu.go).
		if wantOpts := map[string]string{"tcg": "thread=single", "kvm": ""}[a.Name]; a.Opts != wantOpts {
			t.Errorf("%s: %s opts %q, want %q", c.name, a.Name, a.Opts, wantOpts)
		}
	}
	if _, _, err := ChooseAccel(ctx, "hvf", "k", yes, &fakeProber{}, time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad mode: %v", err)
	}
}

func TestMachineArgs(t *testing.T) {
	m := Machine{Kernel: "/c/vmlinuz", Initrd: "/c/initrd.img", Disk: "/w/overlay.qcow2", Share: "/w/share",
		Accel: Accel{Name: "tcg", CPU: "max", Opts: "thread=single"}, Boot: BootConfig{MemoryMB: 3072, CPUs: 2, Accel: "auto"}}
	args := m.Args()
	pair := func(flag string) string {
		i := slices.Index(args, flag)
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("no %s in %q", flag, args)
		}
		return args[i+1]
	}
	want := map[string]string{"-accel": "tcg,thread=single", "-cpu": "max", "-m": "3072", "-smp": "2", "-nic": "none",
		"-kernel": "/c/vmlinuz", "-initrd": "/c/initrd.img", "-serial": "stdio", "-monitor": "none"}
	for f, v := range want {
		if got := pair(f); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	if !strings.HasPrefix(pair("-drive"), "file=/w/overlay.qcow2,if=virtio,format=qcow2") {
		t.Errorf("drive %q", pair("-drive"))
	}
	if pair("-virtfs") != "local,path=/w/share,mount_tag=nfslab,security_model=none,id=nfslab" {
		t.Errorf("virtfs %q", pair("-virtfs"))
	}
	for _, need := range []string{"root=/dev/vda", "console=ttyS0", "init=/nfslab/init", "panic=-1"} {
		if !strings.Contains(pair("-append"), need) {
			t.Errorf("cmdline %q lacks %s", pair("-append"), need)
		}
	}
	if !slices.Contains(args, "-no-reboot") || slices.Contains(args, "-netdev") {
		t.Errorf("want -no-reboot and no network: %q", args)
	}
	m.Interactive, m.Cmdline = true, []string{"nfslab.mode=shell"}
	args = m.Args()
	if pair("-serial") != "mon:stdio" || !strings.HasSuffix(pair("-append"), "nfslab.mode=shell") {
		t.Errorf("shell args %q", args)
	}
}

func TestStatusParsing(t *testing.T) {
	st := `{"kernel":"6.1.0-50-amd64","steps":[{"name":"nfs-full-drop","argv":["nfslab","run"],"exit_code":0,"started":"2026-01-01T00:00:00Z","duration":"1m2s","verdict":"PASS","log":"logs/nfs-full-drop.log"},{"name":"x","argv":["nfslab"],"exit_code":1,"started":"2026-01-01T00:00:00Z","duration":"3s","leftovers":["mount: a /b nfs4"],"verdict":"FAIL","log":"logs/x.log"}],"complete":true}`
	s, err := ParseStatus([]byte(st))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Complete || len(s.Steps) != 2 || s.Steps[0].Duration.D() != 62*time.Second || !slices.Equal(s.Failed(), []string{"x"}) {
		t.Fatalf("parsed %+v", s)
	}
	console := "[   3.2] random: crng init done\r\nnoise NFSLAB-VM-STATUS {\"kernel\":\"old\",\"steps\":[],\"complete\":false}\r\n" +
		"[  9.1] nfs: server 10.0.0.2 not responding, timed out\r\n" + StatusMarker + st + "\r\n[ 24.3] reboot: Power down\r\n"
	c, err := StatusFromConsole([]byte(console))
	if err != nil || c.Kernel != "6.1.0-50-amd64" || len(c.Steps) != 2 {
		t.Fatalf("console status: %+v %v", c, err)
	}
	if _, err := StatusFromConsole([]byte("Kernel panic - not syncing\n")); !errors.Is(err, ErrNoStatus) {
		t.Fatalf("no marker: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown field": `{"kernel":"k","steps":[],"complete":true,"extra":1}`,
		"bad verdict":   `{"steps":[{"name":"a","verdict":"MAYBE","duration":"1s"}]}`,
		"bad duration":  `{"steps":[{"name":"a","verdict":"PASS","duration":"soon"}]}`,
		"truncated":     `{"steps":[{"name":"a"`,
	} {
		if _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestJobValidate(t *testing.T) {
	ok := Step{Name: "a", Argv: []string{"true"}, Timeout: duration.Duration(time.Second)}
	cases := map[string]Job{
		"empty":        {},
		"no argv":      {Steps: []Step{{Name: "a", Timeout: duration.Duration(time.Second)}}},
		"bad name":     {Steps: []Step{{Name: "a/b", Argv: []string{"x"}, Timeout: duration.Duration(time.Second)}}},
		"dup":          {Steps: []Step{ok, ok}},
		"zero timeout": {Steps: []Step{{Name: "a", Argv: []string{"x"}}}},
	}
	for name, j := range cases {
		if err := j.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPlanJob(t *testing.T) {
	names := []string{"nfs-drop-on-replay", "nfs-full-drop"}
	j := PlanJob(PlanOptions{Scenarios: names, Engine: true})
	if len(j.Steps) != 2 || !slices.Equal(j.Steps[1].Argv, []string{"nfslab", "run", "scenarios/nfs-full-drop.yaml", "--out", "runs", "--probe-cache", "/mnt/nfslab/probecache"}) {
		t.Fatalf("engine plan %+v", j.Steps)
	}
	j = PlanJob(PlanOptions{Scenarios: names, Engine: false})
	if len(j.Steps) != 2 || j.Steps[0].Name != SmokeStep || j.Steps[1].Argv[2] != "unsupported" {
		t.Fatalf("fallback plan %+v", j.Steps)
	}
	j = PlanJob(PlanOptions{Scenarios: []string{"nfs-full-drop"}, Engine: true, Smoke: true})
	if len(j.Steps) != 2 || j.Steps[0].Name != SmokeStep {
		t.Fatalf("smoke plan %+v", j.Steps)
	}
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLeftovers(t *testing.T) {
	save := `# Generated by iptables-nft-save
*filter
:INPUT ACCEPT [10:100]
:NFSLAB-OUTPUT - [0:0]
[5:300] -A OUTPUT -j NFSLAB-OUTPUT
[35:2064] -A NFSLAB-OUTPUT -d 10.214.0.2/32 -p tcp -m tcp --dport 2049 -m comment --comment nfslab:ab12 -j DROP
-A OUTPUT -d 1.2.3.4/32 -j ACCEPT
COMMIT
`
	rules := NfslabRules(save)
	if len(rules) != 3 || strings.Contains(rules[2], "[35:2064]") || strings.Contains(rules[1], "[5:300]") {
		t.Fatalf("rules %q", rules)
	}
	before := Snapshot{
		Rules:  nil,
		Mounts: MountLines("proc /proc proc rw 0 0\nnfslab /mnt/nfslab 9p rw 0 0\n"),
		Links:  LinkNames("1: lo: <LOOPBACK,UP> mtu 65536\n"),
	}
	after := before
	after.Rules = rules
	after.Mounts = MountLines("proc /proc proc rw 0 0\nnfslab /mnt/nfslab 9p rw 0 0\n10.214.0.2:/ /mnt/x nfs4 rw,soft 0 0\n")
	after.Links = LinkNames("1: lo: <LOOPBACK,UP> mtu 65536\n5: nfslab-vs0@if4: <BROADCAST> mtu 1500\n")
	after.Netns = []string{"nfslab-vmsmoke (id: 0)"}
	before.Devices = DeviceLines("No devices found\n", "")
	after.Devices = DeviceLines("nfslab-nfsd-export\t(254:0)\n", "/dev/loop0 /run/nfslab/nfsd/nfslab-nfsd/export.img\n")
	after.Exports = []string{"/run/nfslab/export/nfs-localhost-pitfall-20261202T141345.420Z"}
	got := Leftovers(before, after)
	want := []string{
		"iptables: -A NFSLAB-OUTPUT -d 10.214.0.2/32 -p tcp -m tcp --dport 2049 -m comment --comment nfslab:ab12 -j DROP",
		"iptables: -A OUTPUT -j NFSLAB-OUTPUT",
		"iptables: :NFSLAB-OUTPUT - [0:0]",
		"mount: 10.214.0.2:/ /mnt/x nfs4",
		"netns: nfslab-vmsmoke (id: 0)",
		"link: nfslab-vs0",
		"device: dm nfslab-nfsd-export",
		"device: loop /dev/loop0 /run/nfslab/nfsd/nfslab-nfsd/export.img",
		"export: /run/nfslab/export/nfs-localhost-pitfall-20261202T141345.420Z",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("leftovers\n got %q\nwant %q", got, want)
	}
	if l := Leftovers(after, before); len(l) != 0 {
		t.Fatalf("removals are not leftovers: %q", l)
	}
}

// CI once failed a clean step on "process: 384 (udev-worker)": udevd,
// running before the step, forks workers when nfslab's veth appears. Those
// are not nfslab's; an orphan of PID 1 or a child of the step still is.
func TestLeftoverProcessesAreOnlyNfslabs(t *testing.T) {
	before := Snapshot{Processes: []string{"200 systemd-udevd", "300 sshd"}}
	after := Snapshot{
		Processes: []string{"200 systemd-udevd", "300 sshd", "384 udev-worker", "401 java", "402 rpc.mountd", "403 sh"},
		Parents:   map[string]string{"200": "1", "300": "1", "384": "200", "401": "1", "402": "999", "403": "401"},
	}
	got := Leftovers(before, after)
	want := []string{"process: 401 java", "process: 402 rpc.mountd", "process: 403 sh"}
	if !slices.Equal(got, want) {
		t.Fatalf("leftovers\n got %q\nwant %q", got, want)
	}
}

func TestPlanJobWithTestBinaries(t *testing.T) {
	j := PlanJob(PlanOptions{Smoke: true, CI: true, Tests: []TestBinary{{Path: "/tmp/x/nfsserver.test", Run: "KnfsdInNetnsReal"}}})
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(j.Steps) != 2 || j.Steps[1].Name != "gotest-nfsserver" {
		t.Fatalf("steps %+v", j.Steps)
	}
	want := []string{"tests/nfsserver.test", "-test.v", "-test.count=1", "-test.timeout=10m0s", "-test.run", "KnfsdInNetnsReal"}
	if !slices.Equal(j.Steps[1].Argv, want) || !slices.Equal(j.Steps[1].Env, []string{"CI=true"}) {
		t.Fatalf("test step %+v", j.Steps[1])
	}
	bad := Job{Steps: []Step{{Name: "a", Argv: []string{"x"}, Timeout: duration.Duration(time.Second), Env: []string{"NOEQUALS"}}}}
	if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad env accepted: %v", err)
	}
}

func TestParseTestBinary(t *testing.T) {
	for _, v := range []string{"", "=Foo", "/nonexistent/x.test", "/etc/hostname"} {
		if _, err := ParseTestBinary(v); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", v, err)
		}
	}
}

func TestScenariosForKernel(t *testing.T) {
	names := []string{"nfs-full-drop", "nfs-localio", "nfs-localio-disabled", "nfs-stale-handle"}
	if got := ScenariosForKernel(names, KernelDebian); !slices.Equal(got, []string{"nfs-full-drop", "nfs-stale-handle"}) {
		t.Errorf("debian: %q", got)
	}
	if got := ScenariosForKernel(names, KernelLocalIO); !slices.Equal(got, []string{"nfs-localio", "nfs-localio-disabled"}) {
		t.Errorf("localio: %q", got)
	}
}
