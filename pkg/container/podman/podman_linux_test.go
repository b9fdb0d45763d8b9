package podman

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/probe"
	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/pkg/container"
)

// The privileged tests share one podman service with its own storage under
// a temporary directory (the machine's podman storage stays untouched) and
// one image imported from a rootfs made of a jlink'd JRE plus CtrProbe (the
// lifecycle and netns workloads). The shared journal probe (pkg/probe) is
// compiled once into the same directory and bind-mounted read-only.

const probeImage = "localhost/nfslab-test-probe:latest"

type podmanEnv struct {
	dir string
	svc *Service
	rt  *Client
	log *bytes.Buffer
	// journalClasses holds the compiled JournalProbe (pkg/probe.Build).
	journalClasses string
}

var shared struct {
	mu  sync.Mutex
	env *podmanEnv
	err error
}

func TestMain(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	if e := shared.env; e != nil {
		e.teardown()
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// podmanTest returns the shared environment, starting it on first use.
func podmanTest(t *testing.T) *podmanEnv {
	t.Helper()
	privtest.Root(t)
	privtest.Short(t)
	privtest.Tools(t, "podman", "runc", "conmon", "jlink", "javac", "ldd")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		privtest.Skip(t, "needs /dev/fuse for the faultfs volume")
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.env == nil && shared.err == nil {
		shared.env, shared.err = setupPodman()
	}
	if shared.err != nil {
		t.Fatalf("setting up podman service: %v", shared.err)
	}
	return shared.env
}

func setupPodman() (*podmanEnv, error) {
	start := time.Now()
	dir, err := os.MkdirTemp("", "nfslt-ctr-")
	if err != nil {
		return nil, err
	}
	e := &podmanEnv{dir: dir, log: &bytes.Buffer{}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e.svc, err = StartService(ctx, ServiceOptions{
		Socket:  filepath.Join(dir, "podman.sock"),
		Root:    filepath.Join(dir, "root"),
		RunRoot: filepath.Join(dir, "runroot"),
		TmpDir:  filepath.Join(dir, "tmp"),
		Log:     &syncWriter{w: e.log},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if e.rt, err = Connect(ctx, e.svc.URI); err != nil {
		e.teardown()
		return nil, err
	}
	// Image: a jlink'd java.base runtime and the compiled probe.
	jre := filepath.Join(dir, "jre")
	if err := cmdrun.Run(ctx, "jlink", "--add-modules", "java.base", "--output", jre,
		"--strip-debug", "--no-header-files", "--no-man-pages"); err != nil {
		e.teardown()
		return nil, err
	}
	cls := filepath.Join(dir, "classes")
	if err := cmdrun.Run(ctx, "javac", "-d", cls, "testdata/CtrProbe.java"); err != nil {
		e.teardown()
		return nil, err
	}
	if e.journalClasses, err = probe.Build(ctx, "javac", filepath.Join(dir, "probe-cache")); err != nil {
		e.teardown()
		return nil, err
	}
	tarPath := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		e.teardown()
		return nil, err
	}
	err = container.WriteRootfs(ctx, f, container.RootfsSpec{Trees: map[string]string{jre: "/opt/jre", cls: "/opt/probe"}, Dirs: []string{"/work", "/data"}})
	f.Close()
	if err != nil {
		e.teardown()
		return nil, err
	}
	f, err = os.Open(tarPath)
	if err != nil {
		e.teardown()
		return nil, err
	}
	defer f.Close()
	if _, err := e.rt.Import(ctx, f, probeImage); err != nil {
		e.teardown()
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "podman test environment ready in %s (service pid %d)\n", time.Since(start).Round(time.Millisecond), e.svc.PID())
	return e, nil
}

func (e *podmanEnv) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if e.rt != nil {
		if _, err := container.Cleanup(ctx, e.rt, container.CleanupOptions{StopTimeout: time.Second, DetachNetns: container.DetachNetns}); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
		// Strangers made by TestCleanupOnlyOwned are removed there; remove
		// whatever a failed test left, in this private storage only.
		if all, err := e.rt.List(ctx, nil); err == nil {
			for _, in := range all {
				_ = e.rt.Remove(ctx, in.ID, container.RemoveOptions{Force: true, Volumes: true})
			}
		}
	}
	if e.svc != nil {
		_ = e.svc.Stop()
	}
	unmountUnder(e.dir)
	os.RemoveAll(e.dir)
}

// unmountUnder lazily unmounts what podman's storage left mounted below dir
// (the overlay driver's private bind mount), deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mps = append(mps, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mps)))
	for _, mp := range mps {
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e9) }

func probeSpec(name, run string, args ...string) container.Spec {
	return container.Spec{
		Name:    name,
		Image:   probeImage,
		Command: append([]string{"/opt/jre/bin/java", "-Xmx64m", "-cp", "/opt/probe", "CtrProbe"}, args...),
		Labels:  container.OwnedLabels(run, container.RoleProbe, nil),
		// No bridge networking: with netavark or CNI it would add firewall
		// rules in the machine's own namespace.
		Network: container.NetworkNone,
		WorkDir: "/work",
		// As PID 1 the JVM would ignore signals it has no handler for: its
		// abort() after a SIGBUS ends in exit 1 instead of 134, and SIGTERM
		// before its handlers exist does nothing. Zeebe's image runs tini.
		Init: true,
		// No core file, but keep core dumps "on" for the JVM: with
		// -XX:-CreateCoredumpOnCrash it exits 1 instead of abort()ing (134).
		Rlimits: append(container.DefaultRlimits(), container.Rlimit{Name: "core", Soft: 0, Hard: 0}),
	}
}

// logWatch follows a container's log in the background.
type logWatch struct {
	mu    sync.Mutex
	lines []container.LogLine
	done  chan error
}

func watchLogs(ctx context.Context, rt container.Runtime, name string) *logWatch {
	w := &logWatch{done: make(chan error, 1)}
	go func() {
		w.done <- rt.Logs(ctx, name, container.LogOptions{Follow: true}, func(l container.LogLine) {
			w.mu.Lock()
			w.lines = append(w.lines, l)
			w.mu.Unlock()
		})
	}()
	return w
}

func (w *logWatch) snapshot() []container.LogLine {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]container.LogLine(nil), w.lines...)
}

// waitFor polls until a line satisfies ok, bounded by d.
func (w *logWatch) waitFor(t *testing.T, d time.Duration, what string, ok func(container.LogLine) bool) container.LogLine {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, l := range w.snapshot() {
			if ok(l) {
				return l
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no log line %s within %s; have %d lines, last: %v", what, d, len(w.snapshot()), tail(w.snapshot(), 5))
	return container.LogLine{}
}

func tail(l []container.LogLine, n int) []container.LogLine {
	if len(l) > n {
		return l[len(l)-n:]
	}
	return l
}

func countTicks(lines []container.LogLine) int {
	n := 0
	for _, l := range lines {
		if l.Stream == container.Stdout && strings.HasPrefix(l.Text, "tick ") {
			n++
		}
	}
	return n
}

func TestPodmanProbeLifecycle(t *testing.T) {
	e := podmanTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt := e.rt
	name := uniq("nfslt-tick")
	start := time.Now()
	if _, err := container.Run(ctx, rt, probeSpec(name, "lifecycle", "tick")); err != nil {
		t.Fatalf("run: %v\nservice log:\n%s", err, e.log.String())
	}
	t.Cleanup(func() { _ = rt.Remove(context.Background(), name, container.RemoveOptions{Force: true}) })

	// Errors like podman's.
	if _, err := rt.Create(ctx, probeSpec(name, "lifecycle", "tick")); !errors.Is(err, container.ErrConflict) {
		t.Errorf("creating %s twice: got %v, want ErrConflict", name, err)
	}
	if _, err := rt.Inspect(ctx, "nfslt-no-such-container"); !errors.Is(err, container.ErrNotFound) {
		t.Errorf("inspecting a missing container: got %v, want ErrNotFound", err)
	}

	// Logs stream both stdout and stderr as lines while the JVM runs.
	w := watchLogs(ctx, rt, name)
	w.waitFor(t, 30*time.Second, `"tick 5" on stdout`, func(l container.LogLine) bool { return l.Stream == container.Stdout && l.Text == "tick 5" })
	w.waitFor(t, 5*time.Second, `"warn 0" on stderr`, func(l container.LogLine) bool { return l.Stream == container.Stderr && l.Text == "warn 0" })
	t.Logf("container up and logging after %s", time.Since(start).Round(time.Millisecond))

	in, err := rt.Inspect(ctx, name)
	if err != nil || in.State != container.StateRunning || in.PID <= 0 || in.Labels[container.LabelOwner] != container.OwnerValue {
		t.Fatalf("inspect: %+v, %v", in, err)
	}

	// Paused: no progress. Unpaused: progress again.
	if err := rt.Pause(ctx, name); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if err := rt.Pause(ctx, name); !errors.Is(err, container.ErrConflict) {
		t.Errorf("pausing a paused container: got %v, want ErrConflict", err)
	}
	time.Sleep(300 * time.Millisecond) // lines already written drain
	before := countTicks(w.snapshot())
	time.Sleep(1500 * time.Millisecond)
	if after := countTicks(w.snapshot()); after != before {
		t.Errorf("paused container made progress: %d ticks became %d", before, after)
	}
	if in, _ := rt.Inspect(ctx, name); in.State != container.StatePaused {
		t.Errorf("state while paused = %s", in.State)
	}
	if err := rt.Unpause(ctx, name); err != nil {
		t.Fatalf("unpause: %v", err)
	}
	w.waitFor(t, 10*time.Second, "a new tick after unpause", func(container.LogLine) bool { return countTicks(w.snapshot()) > before+3 })

	// SIGKILL: exit 137; the follow stream ends with the container.
	if err := rt.Kill(ctx, name, syscall.SIGKILL); err != nil {
		t.Fatalf("kill: %v", err)
	}
	code, err := rt.Wait(ctx, name)
	if err != nil || code != 137 {
		t.Fatalf("wait after SIGKILL = %d, %v; want 137", code, err)
	}
	select {
	case err := <-w.done:
		if err != nil {
			t.Errorf("log stream ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("log stream did not end after the container exited")
	}
	if err := rt.Stop(ctx, name, time.Second); !errors.Is(err, container.ErrNotModified) {
		t.Errorf("stopping an exited container: got %v, want ErrNotModified", err)
	}

	// Restart brings it back with a new process.
	if err := rt.Restart(ctx, name, time.Second); err != nil {
		t.Fatalf("restart: %v", err)
	}
	in2, err := rt.Inspect(ctx, name)
	if err != nil || in2.State != container.StateRunning || in2.PID == in.PID {
		t.Fatalf("after restart: %+v, %v (old pid %d)", in2, err, in.PID)
	}
	// Stop: the JVM exits on SIGTERM with 143.
	if err := rt.Stop(ctx, name, 5*time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if code, err := rt.Wait(ctx, name); err != nil || code != 143 {
		t.Errorf("wait after stop = %d, %v; want 143", code, err)
	}
	if err := rt.Remove(ctx, name, container.RemoveOptions{}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := rt.Remove(ctx, name, container.RemoveOptions{}); !errors.Is(err, container.ErrNotFound) {
		t.Errorf("removing twice: got %v, want ErrNotFound", err)
	}
	t.Logf("lifecycle done in %s", time.Since(start).Round(time.Millisecond))
}

func TestPodmanCleanupOnlyOwned(t *testing.T) {
	e := podmanTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt := e.rt
	start := time.Now()
	// A stranger: same image, no nfslab labels, created with the podman CLI
	// against the same service.
	stranger := uniq("nfslt-stranger")
	if err := cmdrun.Run(ctx, "podman", "--remote", "--url", e.svc.URI, "create", "--name", stranger,
		"--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		probeImage, "/opt/jre/bin/java", "-version"); err != nil {
		t.Fatalf("creating stranger: %v", err)
	}
	t.Cleanup(func() { _ = rt.Remove(context.Background(), stranger, container.RemoveOptions{Force: true}) })
	a1, a2, b := uniq("nfslt-run-a1"), uniq("nfslt-run-a2"), uniq("nfslt-run-b")
	for _, c := range []struct{ name, run string }{{a1, "run-a"}, {a2, "run-a"}, {b, "run-b"}} {
		if _, err := container.Run(ctx, rt, probeSpec(c.name, c.run, "tick")); err != nil {
			t.Fatalf("run %s: %v", c.name, err)
		}
	}
	if err := rt.Pause(ctx, a2); err != nil { // paused ones must go too
		t.Fatal(err)
	}
	removed, err := container.Cleanup(ctx, rt, container.CleanupOptions{RunID: "run-a", StopTimeout: time.Second})
	if err != nil {
		t.Fatalf("cleanup run-a: %v", err)
	}
	if len(removed) != 2 || removed[0] != a2 || removed[1] != a1 {
		t.Errorf("cleanup run-a removed %v, want [%s %s] (newest first)", removed, a2, a1)
	}
	if _, err := rt.Inspect(ctx, b); err != nil {
		t.Errorf("container of another run is gone: %v", err)
	}
	if removed, err = container.Cleanup(ctx, rt, container.CleanupOptions{StopTimeout: time.Second}); err != nil || len(removed) != 1 || removed[0] != b {
		t.Errorf("cleanup all removed %v, %v; want [%s]", removed, err, b)
	}
	if removed, err = container.Cleanup(ctx, rt, container.CleanupOptions{}); err != nil || len(removed) != 0 {
		t.Errorf("second cleanup removed %v, %v; want nothing", removed, err)
	}
	if _, err := rt.Inspect(ctx, stranger); err != nil {
		t.Errorf("cleanup removed a container without nfslab labels: %v", err)
	}
	t.Logf("cleanup test done in %s", time.Since(start).Round(time.Millisecond))
}

// TestAttachNetnsUnreachable gives a running container's network namespace
// a name, has pkg/netfault install an unreachable route inside it, and
// watches connect() from inside the container turn from "refused" (the
// peer answers) into EHOSTUNREACH and back after healing. The peer is a
// namespace the test makes, joined to the container by a veth pair.
func TestAttachNetnsUnreachable(t *testing.T) {
	e := podmanTest(t)
	privtest.Tools(t, "ip", "iptables")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt := e.rt
	start := time.Now()
	const ctrAddr, peerAddr = "10.231.7.1", "10.231.7.2"
	name := uniq("nfslt-conn")
	if _, err := container.Run(ctx, rt, probeSpec(name, "netns", "connect", peerAddr, "9")); err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() { _ = rt.Remove(context.Background(), name, container.RemoveOptions{Force: true}) })

	nsName, err := container.AttachNetns(ctx, rt, name)
	if err != nil {
		t.Fatalf("attach netns: %v", err)
	}
	t.Cleanup(func() { _ = container.DetachNetns(name) })
	if nsName != container.NetnsName(name) {
		t.Errorf("netns name %q, want %q", nsName, container.NetnsName(name))
	}
	if again, err := container.AttachNetns(ctx, rt, name); err != nil || again != nsName {
		t.Errorf("attaching twice: %q, %v", again, err)
	}

	peer := uniq("nfslt-ctrpeer")
	if err := cmdrun.Run(ctx, "ip", "netns", "add", peer); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmdrun.Run(context.Background(), "ip", "netns", "del", peer) })
	ipIn := func(ns string, args ...string) {
		t.Helper()
		if err := cmdrun.Run(ctx, "ip", append([]string{"-n", ns}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	ipIn(peer, "link", "add", "nfslt0", "type", "veth", "peer", "name", "nfslt1", "netns", nsName)
	ipIn(peer, "addr", "add", peerAddr+"/24", "dev", "nfslt0")
	ipIn(peer, "link", "set", "nfslt0", "up")
	ipIn(nsName, "addr", "add", ctrAddr+"/24", "dev", "nfslt1")
	ipIn(nsName, "link", "set", "nfslt1", "up")

	w := watchLogs(ctx, rt, name)
	refused := func(l container.LogLine) bool { return strings.Contains(l.Text, "Connection refused") }
	unreach := func(l container.LogLine) bool { return strings.Contains(l.Text, "No route to host") }
	w.waitForAfter(t, 0, 20*time.Second, "connect refused by the peer", refused)

	m, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := m.Apply(ctx, netfault.Spec{Kind: netfault.KindUnreachable, Dst: peerAddr, Netns: nsName, For: time.Minute}.WithDefaults())
	if err != nil {
		t.Fatalf("unreachable route in %s: %v", nsName, err)
	}
	mark := len(w.snapshot())
	w.waitForAfter(t, mark, 10*time.Second, "EHOSTUNREACH after the route", unreach)
	if err := m.Heal(ctx, nsName, f.ID); err != nil {
		t.Fatalf("heal: %v", err)
	}
	mark = len(w.snapshot())
	w.waitForAfter(t, mark, 10*time.Second, "connect refused again after healing", refused)

	if err := container.DetachNetns(name); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if _, err := os.Stat(filepath.Join(container.NetnsDir, nsName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after detach: %v", nsName, err)
	}
	if err := container.DetachNetns(name); err != nil {
		t.Errorf("detaching twice: %v", err)
	}
	t.Logf("netns test done in %s", time.Since(start).Round(time.Millisecond))
}

func (w *logWatch) waitForAfter(t *testing.T, from int, d time.Duration, what string, ok func(container.LogLine) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		lines := w.snapshot()
		for _, l := range lines[min(from, len(lines)):] {
			if ok(l) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no log line %s within %s; last: %v", what, d, tail(w.snapshot(), 5))
}
