//go:build linux && podmanguest

// This file needs rootful podman 5 and a kernel NFS client and server,
// which the host and CI machines lack: it is built only with -tags
// podmanguest, into a test binary that runs in the trixie lab VM (podman
// 5.4, kernel 6.12):
//
//	CGO_ENABLED=0 go test -tags "$TAGS podmanguest" -c -o podman.test ./pkg/container/podman   # on the host
//	nfslab vm run --guest trixie --smoke-only --test-binary 'podman.test=^TestPodman5GuestReal$'

package podman

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

// workloadEnv makes the test binary the container's workload
// (TestHelperWorkload): the image holds only this static binary.
const workloadEnv = "NFSLAB_TEST_WORKLOAD"

// Exit status of the workload when told to stop.
const workloadExit = 7

// TestHelperWorkload is not a test: inside the container it writes a line
// to stdout and to stderr, a report to /work (the container's own file
// system, for CopyOut) and a counter into $NFSLAB_TEST_WORKLOAD (the NFS
// bind mount) every 100 ms, until a file "stop" appears there; then it
// exits with status 7.
func TestHelperWorkload(t *testing.T) {
	dir := os.Getenv(workloadEnv)
	if dir == "" {
		t.Skip("helper process for TestPodman5GuestReal")
	}
	fmt.Println("workload: started")
	fmt.Fprintln(os.Stderr, "workload: stderr works")
	if err := os.WriteFile("/work/report.txt", []byte("report written in the container\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(dir, "stop")); err == nil {
			fmt.Printf("workload: stop after %d ticks\n", i)
			os.Exit(workloadExit)
		}
		if err := os.WriteFile(filepath.Join(dir, "ticks"), []byte(strconv.Itoa(i)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			os.Exit(1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPodman5GuestReal runs pkg/container's podman v5 bindings against the
// guest's podman 5 service (its own storage under a temporary directory):
// an image imported from a rootfs tarball (this static test binary, no
// registry), a container created with nfslab's labels and a bind mount of
// a directory on a real soft NFS mount (knfsd in a test-owned namespace),
// its log streamed through the bindings, pause (the NFS counter stops) and
// unpause, a file copied out, wait with the workload's exit status, and
// cleanup by label removing it and only it.
func TestPodman5GuestReal(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "podman", "conmon", "ip", "rpc.nfsd", "rpc.mountd", "exportfs", "nsenter", "ldd")
	ociRuntime := "runc"
	if _, err := exec.LookPath(ociRuntime); err != nil {
		ociRuntime = "crun" // trixie's podman depends on crun | runc
	}
	privtest.Tools(t, ociRuntime)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// podman refuses a runroot longer than 50 characters: t.TempDir's
	// paths are longer.
	dir, err := os.MkdirTemp("", "nfslt-p5")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountUnder(dir); _ = os.RemoveAll(dir) })

	// The NFS mount: knfsd in a namespace of the test's, mounted soft from
	// here (the guest's namespace), as the engine does.
	srv, err := nfsserver.NewNetns(nfsserver.NetnsConfig{
		Name: testnet.RandomName("nfslt-p5"), HostVeth: "nfslt-p5h", PeerVeth: "nfslt-p5s",
		StateDir: filepath.Join(dir, "nfsstate"), ExportDir: filepath.Join(dir, "export"),
		Threads: 2, DisableLocalIO: true,
	}.WithDefaults(), nfsserver.NewHost())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("stopping the NFS server: %v", err)
		}
	})
	ep, err := srv.Start(ctx)
	if err != nil {
		t.Fatalf("starting knfsd: %v", err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	opts, err := mount.ParseNFSOptions(mount.DefaultNFSOptions)
	if err != nil {
		t.Fatal(err)
	}
	m := mount.NewLinux(mount.LinuxOptions{})
	if _, err := mount.MountNFS(ctx, m, mount.NetResolver{}, ep.Source(), mnt, opts); err != nil {
		t.Fatalf("mounting %s: %v", ep.Source(), err)
	}
	// Registered after the server's Stop, so it runs before it.
	t.Cleanup(func() {
		if _, err := m.Unmount(context.Background(), mnt, mount.UnmountOptions{Timeout: 30 * time.Second}); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	data := filepath.Join(mnt, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatalf("mkdir on NFS: %v", err)
	}

	// The podman 5 service with private storage.
	var svcLog bytes.Buffer
	svc, err := StartService(ctx, ServiceOptions{
		Socket: filepath.Join(dir, "podman.sock"), Runtime: ociRuntime, StorageDriver: "vfs",
		Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "runroot"), TmpDir: filepath.Join(dir, "tmp"),
		Log: &syncWriter{w: &svcLog},
	})
	if err != nil {
		t.Fatalf("starting the podman service: %v", err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Errorf("stopping the podman service: %v", err)
		}
		if t.Failed() {
			t.Logf("podman service log:\n%s", svcLog.String())
		}
	})
	rt, err := Connect(ctx, svc.URI)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := rt.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("podman service %s, runtime %s", ver, ociRuntime)
	if !strings.HasPrefix(ver, "5.") {
		t.Fatalf("podman %s is not podman 5 (the trixie guest has 5.4)", ver)
	}

	// The image: a rootfs tarball holding this static binary, imported.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := container.WriteRootfs(ctx, &tarball, container.RootfsSpec{Executables: []string{self}, Dirs: []string{"/work", "/data", "/tmp"}}); err != nil {
		t.Fatal(err)
	}
	const ref = "localhost/nfslab-test-p5:latest"
	if _, err := rt.Import(ctx, &tarball, ref); err != nil {
		t.Fatalf("import: %v", err)
	}
	if ok, err := rt.ImageExists(ctx, ref); err != nil || !ok {
		t.Fatalf("imported image %s: exists %v, %v", ref, ok, err)
	}

	// Nothing without nfslab's owner label is created, so cleanup by label
	// covers everything nfslab makes.
	if _, err := rt.Create(ctx, container.Spec{Name: uniq("nfslt-unlabelled"), Image: ref, Command: []string{self, "-test.run=^$"},
		Network: container.NetworkNone, Labels: map[string]string{"io.example": "not-nfslab"}}); err == nil {
		t.Fatal("Create accepted a spec without nfslab's owner label")
	}

	name := uniq("nfslt-p5")
	spec := container.Spec{
		Name: name, Image: ref,
		Command: []string{self, "-test.run=^TestHelperWorkload$"},
		Env:     map[string]string{workloadEnv: "/data"},
		Labels:  container.OwnedLabels("p5-guest", container.RoleProbe, map[string]string{"io.nfslab.test": t.Name()}),
		Mounts:  []container.Mount{{Source: data, Target: "/data"}},
		// No bridge: netavark would add firewall rules in the guest's namespace.
		Network: container.NetworkNone,
		WorkDir: "/work",
		Rlimits: container.DefaultRlimits(),
	}
	if _, err := container.Run(ctx, rt, spec); err != nil {
		t.Fatalf("run: %v", err)
	}
	in, err := rt.Inspect(ctx, name)
	if err != nil || in.State != container.StateRunning || in.Labels[container.LabelRun] != "p5-guest" || in.Labels["io.nfslab.test"] != t.Name() {
		t.Fatalf("inspect: %+v, %v", in, err)
	}
	w := watchLogs(ctx, rt, name)
	w.waitFor(t, 30*time.Second, `"workload: started" on stdout`, func(l container.LogLine) bool {
		return l.Stream == container.Stdout && l.Text == "workload: started"
	})
	w.waitFor(t, 5*time.Second, `"workload: stderr works" on stderr`, func(l container.LogLine) bool {
		return l.Stream == container.Stderr && l.Text == "workload: stderr works"
	})

	// The counter on NFS grows while running, stands still while paused.
	ticks := func() int {
		var n int
		_ = mount.WithTimeout(ctx, 10*time.Second, func() error {
			b, err := os.ReadFile(filepath.Join(data, "ticks"))
			if err == nil {
				n, _ = strconv.Atoi(string(b))
			}
			return err
		})
		return n
	}
	growing := func(what string) int {
		t.Helper()
		a := ticks()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
			if b := ticks(); b > a {
				return b
			}
		}
		t.Fatalf("%s: the counter on NFS stays at %d", what, a)
		return 0
	}
	growing("running")
	if err := rt.Pause(ctx, name); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if in, _ := rt.Inspect(ctx, name); in.State != container.StatePaused {
		t.Errorf("state after pause = %s", in.State)
	}
	time.Sleep(500 * time.Millisecond) // a write in flight lands
	before := ticks()
	time.Sleep(2 * time.Second)
	if after := ticks(); after != before {
		t.Errorf("paused container wrote to NFS: counter %d became %d", before, after)
	}
	if err := rt.Unpause(ctx, name); err != nil {
		t.Fatalf("unpause: %v", err)
	}
	growing("after unpause")

	// Copy out of the container's own file system.
	var report bytes.Buffer
	if err := rt.CopyOut(ctx, name, "/work/report.txt", &report); err != nil || report.String() != "report written in the container\n" {
		t.Errorf("copy out /work/report.txt = %q, %v", report.String(), err)
	}

	// Stop through the NFS mount; wait returns the workload's status.
	if err := mount.WithTimeout(ctx, 10*time.Second, func() error {
		return os.WriteFile(filepath.Join(data, "stop"), nil, 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	code, err := rt.Wait(ctx, name)
	if err != nil || code != workloadExit {
		t.Fatalf("wait = %d, %v; want %d", code, err, workloadExit)
	}
	w.waitFor(t, 5*time.Second, "the stop line", func(l container.LogLine) bool { return strings.HasPrefix(l.Text, "workload: stop after ") })
	select {
	case err := <-w.done:
		if err != nil {
			t.Errorf("log stream ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("log stream did not end after the container exited")
	}
	// Copy out still works on an exited container.
	report.Reset()
	if err := rt.CopyOut(ctx, name, "/work/report.txt", &report); err != nil || report.Len() == 0 {
		t.Errorf("copy out of the exited container = %q, %v", report.String(), err)
	}

	// Cleanup by label: a second nfslab container of another run stays.
	other := uniq("nfslt-p5-other")
	o := spec
	o.Name, o.Labels = other, container.OwnedLabels("p5-other", container.RoleProbe, nil)
	o.Mounts = nil
	if _, err := rt.Create(ctx, o); err != nil {
		t.Fatalf("create %s: %v", other, err)
	}
	removed, err := container.Cleanup(ctx, rt, container.CleanupOptions{RunID: "p5-guest", StopTimeout: time.Second})
	if err != nil || len(removed) != 1 || removed[0] != name {
		t.Fatalf("cleanup of run p5-guest removed %v, %v; want [%s]", removed, err, name)
	}
	if left, err := container.ListOwned(ctx, rt, "p5-guest"); err != nil || len(left) != 0 {
		t.Errorf("run p5-guest still lists %+v, %v", left, err)
	}
	if _, err := rt.Inspect(ctx, other); err != nil {
		t.Errorf("cleanup of run p5-guest took %s of another run: %v", other, err)
	}
	if removed, err := container.Cleanup(ctx, rt, container.CleanupOptions{StopTimeout: time.Second}); err != nil || len(removed) != 1 || removed[0] != other {
		t.Errorf("cleanup of every nfslab container removed %v, %v; want [%s]", removed, err, other)
	}
	if all, err := rt.List(ctx, nil); err != nil || len(all) != 0 {
		t.Errorf("containers left: %+v, %v", all, err)
	}
}
