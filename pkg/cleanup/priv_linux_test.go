package cleanup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/faultfs"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// helperEnv makes the test binary a faultfs server (mount + control
// socket) that the test can kill with SIGKILL, leaving a dead FUSE mount.
const helperEnv = "NFSLAB_CLEANUP_FAULTFS_HELPER"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		os.Exit(faultfsHelper(strings.Split(v, "|")))
	}
	os.Exit(m.Run())
}

// faultfsHelper mounts faultfs over args[0] at args[1], serves its rules
// on the socket args[2], prints "ready" and waits to be killed.
func faultfsHelper(args []string) int {
	fsys, err := faultfs.Mount(args[0], args[1], faultfs.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mount:", err)
		return 1
	}
	ln, err := net.Listen("unix", args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 1
	}
	go (&http.Server{Handler: faultfs.Handler(fsys), ReadHeaderTimeout: time.Second}).Serve(ln)
	fmt.Println("ready")
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	<-ch
	return 0
}

// startDeadFaultfs starts a faultfs server in a child process, checks that
// its socket answers, then kills it with SIGKILL: what a crashed `nfslab
// faultfs mount` leaves behind.
func startDeadFaultfs(t *testing.T, backing, mnt, sock string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+backing+"|"+mnt+"|"+sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ready <- sc.Scan() && sc.Text() == "ready"
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("faultfs helper failed to start")
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("faultfs helper not ready in 20s")
	}
	if !socketAnswers(context.Background(), sock, time.Second) {
		t.Fatal("helper's control socket does not answer")
	}
	// Killed by PID: a process this test started.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

func mountinfoHas(t *testing.T, p string) bool {
	t.Helper()
	ok, err := mount.NewLinux(mount.LinuxOptions{}).IsMounted(p)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestPrivSweepRemovesRealObjects creates one real object of each kind the
// host can have here, inside temporary roots and a namespace the test made
// (a dead faultfs mount and its stale socket, a tmpfs under the mount root,
// a fault in the namespace, an attached namespace name), plus a foreign
// twin of each, and shows that one Sweep removes all of nfslab's and none
// of the others. The host kernel has no nfsd and no podman service is
// assumed, so those two steps use fakes here.
func TestPrivSweepRemovesRealObjects(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "iptables", "iptables-save")
	privtest.FUSE(t)
	// Short base: unix socket paths are limited to 108 bytes.
	base, err := os.MkdirTemp("", "nfslt-cln")
	if err != nil {
		t.Fatal(err)
	}
	var created []string // mounts to detach if the test fails half-way
	t.Cleanup(func() {
		for i := len(created) - 1; i >= 0; i-- {
			_ = unix.Unmount(created[i], unix.MNT_DETACH)
		}
		os.RemoveAll(base)
	})
	ffsRoot, mntRoot, netnsDir, ndRoot := filepath.Join(base, "faultfs"), filepath.Join(base, "mnt"), filepath.Join(base, "netns"), filepath.Join(base, "nfsd")
	backing, foreign := filepath.Join(base, "backing"), filepath.Join(base, "foreign")
	exRoot := filepath.Join(base, "export")
	for _, d := range []string{ffsRoot + "/dead", mntRoot + "/data", netnsDir, ndRoot, backing, foreign,
		exRoot + "/run-x/journal", exRoot + "/nfslab-lost", exRoot + "/run-busy/sub"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// 1. A faultfs whose server was killed: a dead FUSE mount.
	created = append(created, ffsRoot+"/dead")
	startDeadFaultfs(t, backing, ffsRoot+"/dead", ffsRoot+"/dead.sock")
	if !mountinfoHas(t, ffsRoot+"/dead") {
		t.Fatal("premise: the killed server's FUSE mount is gone already")
	}
	serr := mount.WithTimeout(context.Background(), 2*time.Second, func() error { _, err := os.Stat(ffsRoot + "/dead/x"); return err })
	t.Logf("stat on the dead faultfs mount: %v", serr)
	if !errors.Is(serr, unix.ENOTCONN) {
		t.Errorf("premise: a dead FUSE mount answers ENOTCONN, got %v", serr)
	}

	// 2. A tmpfs under the mount root, and a foreign tmpfs next to it.
	for _, p := range []string{mntRoot + "/data", foreign} {
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mounting tmpfs on %s: %v", p, err)
		}
		created = append(created, p)
	}

	// 3. A fault in a test namespace, and a foreign rule there.
	ns := testnet.RandomName("nfslt-cln")
	testnet.NewNetns(t, ns)
	testnet.MustExec(t, ns, "iptables", "-A", "OUTPUT", "-d", "192.0.2.8", "-p", "tcp", "-j", "DROP")
	mgr, err := netfault.NewManager(netfault.Options{StateDir: filepath.Join(base, "state")})
	if err != nil {
		t.Fatal(err)
	}
	f, err := mgr.Apply(context.Background(), netfault.Spec{Kind: netfault.KindDrop, Dst: "192.0.2.9", Netns: ns}.WithDefaults())
	if err != nil {
		t.Fatalf("applying fault: %v", err)
	}

	// 4. An attached namespace name (what AttachNetns makes) and a foreign one.
	for _, n := range []string{container.NetnsName("zeebe"), "someone-elses"} {
		p := filepath.Join(netnsDir, n)
		if err := os.WriteFile(p, nil, 0o444); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("/run/netns/"+ns, p, "none", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind-mounting namespace on %s: %v", p, err)
		}
		created = append(created, p)
	}

	// 5. The NFS server state (no nfsd here: a fake stopper).
	if err := os.Mkdir(filepath.Join(ndRoot, "nfslab-nfsd"), 0o755); err != nil {
		t.Fatal(err)
	}
	var stopped []string

	// 6. Exports: a killed container-server run's directory, a netns
	// server's size-bounded tmpfs (nfslab's source mark) whose state is
	// gone, and an export with somebody else's tmpfs below it.
	for _, m := range [][2]string{{"nfslab-export", exRoot + "/nfslab-lost"}, {"tmpfs", exRoot + "/run-busy/sub"}} {
		if err := unix.Mount(m[0], m[1], "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mounting tmpfs on %s: %v", m[1], err)
		}
		created = append(created, m[1])
	}
	for _, f := range []string{exRoot + "/run-x/journal/segment-0", exRoot + "/nfslab-lost/data", exRoot + "/run-busy/sub/data"} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// fusectl at a private place: the test must not mount it on the
	// host's /sys/fs/fuse/connections.
	fusectl := filepath.Join(base, "fusectl")
	if err := os.Mkdir(fusectl, 0o755); err != nil {
		t.Fatal(err)
	}
	created = append(created, fusectl)

	rep, err := Sweep(context.Background(), Options{
		AbortFuse:   FuseCtl(mount.NewLinux(mount.LinuxOptions{}), fusectl),
		Faults:      mgr,
		Namespaces:  []string{ns},
		NetnsDir:    netnsDir,
		FaultfsRoot: ffsRoot,
		MountRoot:   mntRoot,
		NFSDRoot:    ndRoot,
		ExportRoot:  exRoot,
		Servers: func(_ context.Context, name, dir string) error {
			stopped = append(stopped, name)
			return os.RemoveAll(dir)
		},
		UnmountTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("Sweep: %v\n%+v", err, rep)
	}
	for _, s := range rep.Steps {
		t.Logf("%-11s removed %q kept %q skipped %q", s.Step, s.Removed, s.Kept, s.Skipped)
	}

	// Everything of nfslab's is gone.
	for _, p := range []string{ffsRoot + "/dead", mntRoot + "/data", filepath.Join(netnsDir, container.NetnsName("zeebe"))} {
		if mountinfoHas(t, p) {
			t.Errorf("%s is still mounted", p)
		}
	}
	for _, p := range []string{ffsRoot + "/dead.sock", ffsRoot + "/dead", mntRoot + "/data", filepath.Join(netnsDir, container.NetnsName("zeebe"))} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	if got := rep.Step(StepFaults).Removed; len(got) != 1 || !strings.HasPrefix(got[0], f.ID) {
		t.Errorf("faults removed %q, want %s", got, f.ID)
	}
	save := testnet.MustExec(t, ns, "iptables-save")
	if strings.Contains(strings.ToLower(save), "nfslab") {
		t.Errorf("nfslab rules or chains left in %s:\n%s", ns, save)
	}
	if len(stopped) != 1 || stopped[0] != "nfslab-nfsd" {
		t.Errorf("servers stopped %q", stopped)
	}
	for _, p := range []string{exRoot + "/run-x", exRoot + "/nfslab-lost"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) || mountinfoHas(t, p) {
			t.Errorf("export %s left behind (%v)", p, err)
		}
	}
	if !mountinfoHas(t, exRoot+"/run-busy/sub") {
		t.Errorf("the foreign tmpfs below an export was unmounted")
	}
	if _, err := os.Stat(exRoot + "/run-busy/sub/data"); err != nil {
		t.Errorf("the foreign tmpfs lost its file: %v", err)
	}
	if k := rep.Step(StepExports).Kept; len(k) != 1 || !strings.HasPrefix(k[0], exRoot+"/run-busy (tmpfs is mounted on") {
		t.Errorf("exports kept %q", k)
	}

	// Nothing foreign was touched.
	if !strings.Contains(save, "-A OUTPUT -d 192.0.2.8/32 -p tcp -j DROP") {
		t.Errorf("the foreign rule is gone:\n%s", save)
	}
	for _, p := range []string{foreign, filepath.Join(netnsDir, "someone-elses")} {
		if !mountinfoHas(t, p) {
			t.Errorf("foreign mount %s was unmounted", p)
		}
	}

	// Not found is done: a second sweep finds nothing and fails nothing.
	rep, err = Sweep(context.Background(), Options{Faults: mgr, Namespaces: []string{ns}, NetnsDir: netnsDir,
		FaultfsRoot: ffsRoot, MountRoot: mntRoot, NFSDRoot: ndRoot, Servers: func(context.Context, string, string) error { return nil }})
	if err != nil || rep.Removed() != 0 {
		t.Errorf("second sweep: removed %d, err %v", rep.Removed(), err)
	}
}
