package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

func runStorageCLI(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(&errb, "nfslab:", err)
		return out.String(), errb.String(), exitCode(err)
	}
	return out.String(), errb.String(), 0
}

type storageResolver struct{}

func (storageResolver) LookupAddr(_ context.Context, host string) (netip.Addr, error) {
	return netip.ParseAddr(host)
}
func (storageResolver) SourceAddr(context.Context, netip.Addr) (netip.Addr, error) {
	return netip.MustParseAddr("10.213.0.1"), nil
}

// storageHost is an nfsserver.Host with no knfsd and a scripted dial;
// methods a test does not expect panic through the nil embedded interface.
type storageHost struct {
	nfsserver.Host
	files   map[string]string
	dialErr error
	runs    []string
}

func (h *storageHost) ReadFile(p string) ([]byte, error) {
	if c, ok := h.files[p]; ok {
		return []byte(c), nil
	}
	return nil, fs.ErrNotExist
}
func (h *storageHost) Exists(p string) bool                          { _, ok := h.files[p]; return ok }
func (h *storageHost) DialTCP(context.Context, netip.AddrPort) error { return h.dialErr }
func (h *storageHost) LocalAddrs() ([]netip.Addr, error)             { return nil, nil }
func (h *storageHost) LookPath(n string) (string, error)             { return "/usr/sbin/" + n, nil }
func (h *storageHost) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	h.runs = append(h.runs, strings.Join(append([]string{name}, args...), " "))
	return nil, errors.New("not in this test")
}

// storageProbe is a doctor.Probe of a machine like this one: no NFS.
type storageProbe struct{}

func (storageProbe) Geteuid() int { return 0 }
func (storageProbe) ReadFile(p string) ([]byte, error) {
	if p == "/proc/filesystems" {
		return []byte("nodev\tfuse\n"), nil
	}
	return nil, fs.ErrNotExist
}
func (storageProbe) Exists(string) bool                { return false }
func (storageProbe) LookPath(n string) (string, error) { return "/usr/bin/" + n, nil }
func (storageProbe) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	switch name {
	case "java":
		return []byte(`openjdk version "17.0.15"`), nil
	case "javac":
		return []byte("javac 17.0.15"), nil
	case "iptables":
		return []byte("iptables v1.8.9 (nf_tables)"), nil
	case "qemu-system-x86_64":
		if len(args) > 1 {
			return []byte("failed to set MSR"), errors.New("exit status 134")
		}
	}
	return []byte(name + " 1.0"), nil
}
func (storageProbe) OpenRW(string) error   { return nil }
func (storageProbe) KVMCreateVM() error    { return nil }
func (storageProbe) KernelRelease() string { return "6.18.0" }
func (storageProbe) RandomSuffix() string  { return "t" }

var _ = exec.ErrNotFound

func storageCtx(t *testing.T) (context.Context, *mount.Fake, *storageHost, string) {
	t.Helper()
	f := mount.NewFake()
	h := &storageHost{files: map[string]string{"/proc/filesystems": "nodev\tnfs4\n"}}
	root := t.TempDir()
	ctx := withStorageDeps(context.Background(), storageDeps{mounter: f, resolver: storageResolver{}, host: h, probe: storageProbe{}})
	return ctx, f, h, root
}

func TestStorageBadInputExit2(t *testing.T) {
	ctx, f, h, root := storageCtx(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"mount", "10.0.0.5:/", "-o", "timeo=0"}, "timeo=0 is 0.0 s"},
		{[]string{"mount", "10.0.0.5:/", "-o", "soft,hard"}, "soft and hard"},
		{[]string{"mount", "10.0.0.5:/", "-o", "rsize=1000"}, "rsize=1000"},
		{[]string{"mount", "10.0.0.5:/", "-o", "vers=5"}, `vers="5"`},
		{[]string{"mount", "10.0.0.5:/", "-o", "sotf"}, `"sotf"`},
		{[]string{"mount", "10.0.0.5:/", "-o", "port=70000"}, "port=70000"},
		{[]string{"mount", "10.0.0.5"}, `"10.0.0.5" is not SERVER:/EXPORT`},
		{[]string{"mount", "10.0.0.5:/", "/home/me/nfs", "--mnt-root", root}, `"/home/me/nfs" is not below`},
		{[]string{"mount", "10.0.0.5:/", "../x", "--mnt-root", root}, `"../x" is not below`},
		{[]string{"mount", "10.0.0.5:/", "--timeout", "-1s", "--mnt-root", root}, "--timeout -1s"},
		{[]string{"mount"}, "arg"},
		{[]string{"umount"}, "either DIR or --all"},
		{[]string{"umount", "x", "--all"}, "either DIR or --all"},
		{[]string{"umount", "x", "--timeout", "0s"}, "--timeout 0s"},
		{[]string{"umount", "/etc"}, `"/etc" is not below`},
		{[]string{"doctor", "--for", "moon"}, `--for "moon" is not an experiment`},
		{[]string{"doctor", "extra"}, "extra"},
		{[]string{"nfs-server", "start", "--kind", "moon"}, `--kind "moon"`},
		{[]string{"nfs-server", "start", "--subnet", "10.213.0.0/24"}, "10.213.0.0/24"},
		{[]string{"nfs-server", "start", "--subnet", "bogus"}, `--subnet "bogus"`},
		{[]string{"nfs-server", "start", "--threads", "0"}, "threads"},
		{[]string{"nfs-server", "start", "--netns", "a/b"}, `"a/b"`},
		{[]string{"nfs-server", "start", "--kind", "external"}, "needs --addr"},
		{[]string{"nfs-server", "start", "--kind", "external", "--addr", "h", "--port", "70000"}, "--port 70000"},
		{[]string{"nfs-server", "start", "--kind", "external", "--addr", "h", "--export", "rel"}, `export "rel"`},
		{[]string{"nfs-server", "status", "--kind", "external", "--addr", "h"}, "applies to --kind netns"},
		{[]string{"nfs-server", "stop", "extra"}, "extra"},
		{[]string{"nfs-server", "start", "--bogus"}, "unknown flag"},
		{[]string{"nfs-server", "restart", "--down", "-1s"}, "--down -1s"},
		{[]string{"nfs-server", "unexport", "--for", "-2s"}, "--for -2s"},
		{[]string{"nfs-server", "expire-clients", "--kind", "external", "--addr", "h"}, "needs --kind netns"},
		{[]string{"nfs-server", "export", "x"}, `"x"`},
		{[]string{"nfs-server", "start", "--export-size", "lots"}, `--export-size "lots"`},
		{[]string{"nfs-server", "start", "--export-size", "1KB"}, "at least 1 MiB"},
		{[]string{"nfs-server", "fill", "--for", "-1s"}, "--for -1s"},
		{[]string{"nfs-server", "start", "--export-size", "64MB", "--export-fs", "xfs"}, `export filesystem "xfs"`},
		{[]string{"nfs-server", "start", "--export-size", "8MB", "--export-fs", "ext4"}, "at least 16 MiB"},
		{[]string{"nfs-server", "eio"}, "eio needs a path"},
		{[]string{"nfs-server", "eio", "--path", "../etc/passwd"}, `path "../etc/passwd"`},
		{[]string{"nfs-server", "eio", "--blocks", "9-3"}, `blocks "9-3"`},
		{[]string{"nfs-server", "eio", "--blocks", "lots"}, `blocks "lots"`},
		{[]string{"nfs-server", "eio", "--path", "x", "--for", "-1s"}, "--for -1s"},
		{[]string{"nfs-server", "eio-off", "x"}, `"x"`},
	} {
		_, stderr, code := runStorageCLI(t, ctx, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("nfslab %s: exit %d, stderr %q; want exit 2 naming %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("bad input reached the kernel: %q", calls)
	}
	if len(h.runs) != 0 {
		t.Errorf("bad input ran commands: %q", h.runs)
	}
}

func TestStorageMountAndUmount(t *testing.T) {
	ctx, f, _, root := storageCtx(t)
	target := filepath.Join(root, "zeebe")
	f.AddDir(target)
	out, stderr, code := runStorageCLI(t, ctx, "mount", "10.213.0.2:/run/nfslab/export/nfslab-nfsd", "zeebe", "--mnt-root", root)
	if code != 0 {
		t.Fatalf("mount: exit %d: %s", code, stderr)
	}
	want := "mount 10.213.0.2:/run/nfslab/export/nfslab-nfsd " + target + " nfs4 vers=4.2,proto=tcp,port=2049,soft,timeo=10,retrans=2,addr=10.213.0.2,clientaddr=10.213.0.1"
	if got := f.Calls()[0]; got != want {
		t.Errorf("mount call %q\nwant       %q", got, want)
	}
	if !strings.Contains(out, "timeo=10 is 1.0 s") || !strings.Contains(out, "EIO after about 6s") {
		t.Errorf("mount output lacks the explained units: %q", out)
	}
	// Mounting again on the same point is refused.
	if _, stderr, code := runStorageCLI(t, ctx, "mount", "10.213.0.2:/x", "zeebe", "--mnt-root", root); code != 1 || !strings.Contains(stderr, "already a mount point") {
		t.Errorf("double mount: exit %d %q", code, stderr)
	}
	f.SetBusy(target, true)
	out, stderr, code = runStorageCLI(t, ctx, "umount", "zeebe", "--mnt-root", root, "--timeout", "2s")
	if code != 0 || !strings.Contains(out, "left lazily detached") {
		t.Fatalf("umount busy: exit %d out %q err %q", code, out, stderr)
	}
	if _, stderr, code := runStorageCLI(t, ctx, "umount", "zeebe", "--mnt-root", root); code != 1 || !strings.Contains(stderr, "not mounted") {
		t.Errorf("umount of unmounted: exit %d %q", code, stderr)
	}
}

func TestStorageUmountAllOnlyOwnDir(t *testing.T) {
	ctx, f, _, root := storageCtx(t)
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	f.AddDir(a, b, "/mnt/other")
	for _, p := range []string{a, b, "/mnt/other"} {
		if err := f.Mount(ctx, "s:/", p, "nfs4", nil); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, code := runStorageCLI(t, ctx, "umount", "--all", "--mnt-root", root)
	if code != 0 {
		t.Fatalf("umount --all: exit %d %s", code, stderr)
	}
	if strings.Count(out, "unmount ok") != 2 {
		t.Errorf("output %q", out)
	}
	if ok, _ := f.IsMounted("/mnt/other"); !ok {
		t.Error("umount --all touched a mount outside nfslab's directory")
	}
}

func TestStorageLocalIORefusal(t *testing.T) {
	ctx, f, h, root := storageCtx(t)
	h.files["/sys/module/nfsd"] = ""
	h.files[nfsserver.LocalIOParam] = "Y"
	_, stderr, code := runStorageCLI(t, ctx, "mount", "10.213.0.2:/e", "x", "--mnt-root", root)
	if code != 1 || !strings.Contains(stderr, "echo N > /sys/module/nfs/parameters/localio_enabled") {
		t.Fatalf("mount with LOCALIO: exit %d %q", code, stderr)
	}
	if len(f.Calls()) != 0 {
		t.Error("mounted despite LOCALIO")
	}
}

func TestStorageDoctor(t *testing.T) {
	ctx, _, _, _ := storageCtx(t)
	out, stderr, code := runStorageCLI(t, ctx, "doctor", "--for", "nfs-host")
	if code != 1 || !strings.Contains(stderr, "nfs-client") || !strings.Contains(out, "fix:") {
		t.Errorf("doctor --for nfs-host: exit %d out %q err %q", code, out, stderr)
	}
	out, _, code = runStorageCLI(t, ctx, "doctor", "--for", "faultfs", "--json")
	if code != 0 {
		t.Fatalf("doctor --for faultfs --json: exit %d", code)
	}
	var rep struct {
		Checks []struct{ Name, Status string }
		CanRun *bool `json:"can_run"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.CanRun == nil || !*rep.CanRun || len(rep.Checks) < 10 {
		t.Errorf("json %v %+v: %s", err, rep, out)
	}
}

func TestStorageExternalServer(t *testing.T) {
	ctx, _, h, _ := storageCtx(t)
	out, stderr, code := runStorageCLI(t, ctx, "nfs-server", "start", "--kind", "external", "--addr", "192.168.24.110")
	if code != 0 || !strings.Contains(out, "nfslab mount 192.168.24.110:/ NAME -o vers=4.2,proto=tcp,port=2049,soft,timeo=10,retrans=2") {
		t.Fatalf("external start: exit %d out %q err %q", code, out, stderr)
	}
	h.dialErr = errors.New("connect: no route to host")
	if _, stderr, code := runStorageCLI(t, ctx, "nfs-server", "start", "--kind", "external", "--addr", "192.168.24.110"); code != 1 || !strings.Contains(stderr, "unreachable") {
		t.Errorf("unreachable external: exit %d %q", code, stderr)
	}
}

func TestStorageNetnsStartWithoutNFSD(t *testing.T) {
	ctx, _, h, _ := storageCtx(t)
	_, stderr, code := runStorageCLI(t, ctx, "nfs-server", "start")
	if code != 1 || !strings.Contains(stderr, "kernel has no NFS server") {
		t.Fatalf("netns start without nfsd: exit %d %q", code, stderr)
	}
	if strings.Join(h.runs, ";") != "modprobe nfsd" {
		t.Errorf("ran %q", h.runs)
	}
}
