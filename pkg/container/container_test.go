package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
)

func fakeWithImage(t *testing.T, refs ...string) *Fake {
	t.Helper()
	f := NewFake(nil)
	for _, r := range refs {
		f.AddImage(r)
	}
	return f
}

func TestFakeFailsLikePodman(t *testing.T) {
	ctx := context.Background()
	f := fakeWithImage(t, "img")
	s := Spec{Name: "a", Image: "img", Labels: OwnedLabels("r1", RoleProbe, nil)}
	if _, err := f.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Create(ctx, s); !errors.Is(err, ErrConflict) {
		t.Errorf("409: got %v", err)
	}
	if err := f.Start(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("404: got %v", err)
	}
	if err := f.Stop(ctx, "a", time.Second); !errors.Is(err, ErrNotModified) {
		t.Errorf("304 stopping a created container: got %v", err)
	}
	if err := f.Start(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(ctx, "a", RemoveOptions{}); !errors.Is(err, ErrConflict) {
		t.Errorf("removing a running container without force: got %v", err)
	}
	if err := f.Unpause(ctx, "a"); !errors.Is(err, ErrConflict) {
		t.Errorf("unpausing a running container: got %v", err)
	}
	if err := f.Kill(ctx, "a", syscall.SIGBUS); err != nil {
		t.Fatal(err)
	}
	if code, err := f.Wait(ctx, "a"); code != 135 || err != nil {
		t.Errorf("raw SIGBUS exit = %d, %v; want 135", code, err)
	}
	if err := f.Stop(ctx, "a", time.Second); !errors.Is(err, ErrNotModified) {
		t.Errorf("304 stopping an exited container: got %v", err)
	}
	if _, err := f.Create(ctx, Spec{Name: "b", Image: "nope", Labels: OwnedLabels("", "", nil)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing image: got %v", err)
	}
}

func TestSpecValidateNamesBadValue(t *testing.T) {
	ok := Spec{Name: "z", Image: "i", Labels: OwnedLabels("", "", nil)}
	for _, c := range []struct {
		mut  func(*Spec)
		want string
	}{
		{func(s *Spec) { s.Name = "-bad" }, `"-bad"`},
		{func(s *Spec) { s.Labels = nil }, LabelOwner},
		{func(s *Spec) { s.Env = map[string]string{"A B": "x"} }, `"A B"`},
		{func(s *Spec) { s.Rlimits = []Rlimit{{Name: "RLIMIT_NOFILE", Soft: 1, Hard: 1}} }, `"RLIMIT_NOFILE"`},
		{func(s *Spec) { s.Network = "slirp" }, `"slirp"`},
		{func(s *Spec) { s.Network = NetworkNone; s.Ports = []Port{{ContainerPort: 1}} }, "cannot be published"},
		{func(s *Spec) { s.Mounts = []Mount{{Source: "rel", Target: "/x"}} }, "absolute"},
	} {
		s := ok
		c.mut(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want mention of %s", err, c.want)
		}
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid spec: %v", err)
	}
}

func TestRunRemovesWhatFailedToStart(t *testing.T) {
	f := fakeWithImage(t, "img")
	f.StartErr = errors.New("runc create failed: error setting rlimits")
	_, err := Run(context.Background(), f, Spec{Name: "a", Image: "img", Labels: OwnedLabels("", "", nil)})
	if err == nil {
		t.Fatal("want start error")
	}
	if _, err := f.Inspect(context.Background(), "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("half-made container left behind: %v", err)
	}
}

func TestCleanupOnlyOwnedReverseOrder(t *testing.T) {
	ctx := context.Background()
	f := fakeWithImage(t, "img")
	mk := func(name string, labels map[string]string, start bool) {
		t.Helper()
		if labels == nil {
			labels = map[string]string{LabelOwner: OwnerValue}
		}
		if _, err := f.Create(ctx, Spec{Name: name, Image: "img", Labels: labels}); err != nil {
			t.Fatal(err)
		}
		if start {
			if err := f.Start(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("nfs", OwnedLabels("r1", RoleNFSServer, nil), true)
	mk("zeebe", OwnedLabels("r1", RoleZeebe, nil), true)
	mk("other-run", OwnedLabels("r2", RoleZeebe, nil), true)
	mk("exited", OwnedLabels("r1", RoleProbe, nil), false)
	// A stranger carrying a look-alike label must survive.
	if _, err := f.Create(ctx, Spec{Name: "stranger", Image: "img", Labels: map[string]string{LabelOwner: OwnerValue}}); err != nil {
		t.Fatal(err)
	}
	f.ctrs[mustID(t, f, "stranger")].info.Labels = map[string]string{"app": "db", LabelRole: RoleZeebe}
	if err := f.Pause(ctx, "zeebe"); err != nil {
		t.Fatal(err)
	}
	var detached []string
	f.Calls = nil
	removed, err := Cleanup(ctx, f, CleanupOptions{RunID: "r1", DetachNetns: func(n string) error { detached = append(detached, n); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"exited", "zeebe", "nfs"}; !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %v, want %v (newest first)", removed, want)
	}
	if !reflect.DeepEqual(detached, removed) {
		t.Errorf("detached netns of %v, want %v", detached, removed)
	}
	var ops []string
	for _, c := range f.Calls {
		ops = append(ops, strings.Fields(c)[0])
	}
	// exited: remove only; zeebe (paused): unpause, stop, remove; nfs: stop, remove.
	if want := []string{"remove", "unpause", "stop", "remove", "stop", "remove"}; !reflect.DeepEqual(ops, want) {
		t.Errorf("calls %v, want %v", ops, want)
	}
	for _, n := range []string{"other-run", "stranger"} {
		if _, err := f.Inspect(ctx, n); err != nil {
			t.Errorf("%s removed: %v", n, err)
		}
	}
	// Again: nothing left of r1, no error.
	if removed, err := Cleanup(ctx, f, CleanupOptions{RunID: "r1"}); err != nil || len(removed) != 0 {
		t.Errorf("second cleanup: %v, %v", removed, err)
	}
}

// goneRuntime reports 404 for everything it lists, as when another
// process removed the containers between List and Remove.
type goneRuntime struct{ *Fake }

func (g goneRuntime) Stop(context.Context, string, time.Duration) error { return ErrNotFound }
func (g goneRuntime) Remove(context.Context, string, RemoveOptions) error {
	return ErrNotFound
}

func TestCleanupNotFoundIsDone(t *testing.T) {
	ctx := context.Background()
	f := fakeWithImage(t, "img")
	if _, err := Run(ctx, f, Spec{Name: "a", Image: "img", Labels: OwnedLabels("", "", nil)}); err != nil {
		t.Fatal(err)
	}
	if removed, err := Cleanup(ctx, goneRuntime{f}, CleanupOptions{}); err != nil || len(removed) != 1 {
		t.Errorf("cleanup with 404s = %v, %v; want done", removed, err)
	}
}

func mustID(t *testing.T, f *Fake, name string) string {
	t.Helper()
	in, err := f.Inspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return in.ID
}

func TestFakeLogsFollowUntilExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := fakeWithImage(t, "img")
	if _, err := Run(ctx, f, Spec{Name: "a", Image: "img", Labels: OwnedLabels("", "", nil)}); err != nil {
		t.Fatal(err)
	}
	_ = f.AddLog("a", Stdout, "one")
	got := make(chan LogLine, 10)
	done := make(chan error, 1)
	go func() { done <- f.Logs(ctx, "a", LogOptions{Follow: true}, func(l LogLine) { got <- l }) }()
	if l := <-got; l.Text != "one" {
		t.Fatalf("first line %+v", l)
	}
	_ = f.AddLog("a", Stderr, "# SIGBUS (0x7)")
	if l := <-got; l.Stream != Stderr {
		t.Fatalf("second line %+v", l)
	}
	_ = f.Exit("a", 134)
	if err := <-done; err != nil {
		t.Fatalf("logs: %v", err)
	}
	// Cancel ends a follow on a running container.
	if _, err := Run(ctx, f, Spec{Name: "b", Image: "img", Labels: OwnedLabels("", "", nil)}); err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	go func() { done <- f.Logs(cctx, "b", LogOptions{Follow: true}, func(LogLine) {}) }()
	ccancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled follow = %v", err)
	}
}

func TestZeebeSpec(t *testing.T) {
	z := ZeebeSpec{DataDir: "/mnt/nfs", LogSegmentSize: "16MB", SnapshotPeriod: "8h", CPUThreads: 2, IOThreads: 2,
		Env: map[string]string{"JAVA_TOOL_OPTIONS": "-Xmx1g"}, RunID: "r1"}.WithDefaults()
	if err := z.Validate(); err != nil {
		t.Fatal(err)
	}
	s := z.ContainerSpec()
	if s.Image != DefaultZeebeImage || s.Name != DefaultZeebeName {
		t.Errorf("defaults: %+v", s)
	}
	wantEnv := map[string]string{
		"ZEEBE_BROKER_DATA_LOGSEGMENTSIZE":    "16MB",
		"ZEEBE_BROKER_DATA_SNAPSHOTPERIOD":    "8h",
		"ZEEBE_BROKER_THREADS_CPUTHREADCOUNT": "2",
		"ZEEBE_BROKER_THREADS_IOTHREADCOUNT":  "2",
		"JAVA_TOOL_OPTIONS":                   "-Xmx1g",
	}
	if !reflect.DeepEqual(s.Env, wantEnv) {
		t.Errorf("env %v, want %v", s.Env, wantEnv)
	}
	if !reflect.DeepEqual(s.Mounts, []Mount{{Source: "/mnt/nfs", Target: "/usr/local/zeebe/data"}}) {
		t.Errorf("mounts %v", s.Mounts)
	}
	wantPorts := []Port{{HostIP: "127.0.0.1", HostPort: 26500, ContainerPort: 26500}, {HostIP: "127.0.0.1", HostPort: 9600, ContainerPort: 9600}}
	if !reflect.DeepEqual(s.Ports, wantPorts) {
		t.Errorf("ports %v", s.Ports)
	}
	if s.Labels[LabelRole] != RoleZeebe || s.Labels[LabelRun] != "r1" || s.Labels[LabelOwner] != OwnerValue {
		t.Errorf("labels %v", s.Labels)
	}
	if got := z.ReadinessURL(); got != "http://127.0.0.1:9600/actuator/health/readiness" {
		t.Errorf("readiness url %s", got)
	}
	for _, bad := range []struct {
		mut  func(*ZeebeSpec)
		want string
	}{
		{func(z *ZeebeSpec) { z.LogSegmentSize = "16M" }, `"16M"`},
		{func(z *ZeebeSpec) { z.SnapshotPeriod = "8 hours" }, `"8 hours"`},
		{func(z *ZeebeSpec) { z.CPUThreads = 1000 }, "1000"},
		{func(z *ZeebeSpec) { z.DataDir = "data" }, `"data"`},
		{func(z *ZeebeSpec) { z.MonitorPort = 70000 }, "70000"},
	} {
		zz := z
		bad.mut(&zz)
		if err := zz.Validate(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Validate() = %v, want mention of %s", err, bad.want)
		}
	}
}

func TestWaitReadyBoundedWithFakeClock(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	probes := 0
	probe := func(context.Context, string) (bool, error) {
		probes++
		return probes >= 3, errors.New("connection refused")
	}
	done := make(chan error, 1)
	go func() {
		done <- WaitReady(context.Background(), "http://x", ReadyOptions{Timeout: 10 * time.Second, Interval: time.Second, Clock: clk, Probe: probe})
	}()
	for i := 0; i < 2; i++ {
		waitWaiters(t, clk)
		clk.Advance(time.Second)
	}
	if err := <-done; err != nil || probes != 3 {
		t.Fatalf("WaitReady = %v after %d probes", err, probes)
	}

	// Never ready: fails after the timeout with the last cause.
	probes = 0
	never := func(context.Context, string) (bool, error) { probes++; return false, errors.New("connection refused") }
	go func() {
		done <- WaitReady(context.Background(), "http://x", ReadyOptions{Timeout: 5 * time.Second, Interval: time.Second, Clock: clk, Probe: never})
	}()
	for {
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "connection refused") || probes != 5 {
				t.Fatalf("WaitReady = %v after %d probes; want ErrNotReady after 5", err, probes)
			}
			return
		case <-time.After(5 * time.Millisecond):
			if clk.Waiters() > 0 {
				clk.Advance(time.Second)
			}
		}
	}
}

func TestWaitReadyStopsWhenContainerDied(t *testing.T) {
	ctx := context.Background()
	f := fakeWithImage(t, DefaultZeebeImage)
	z := ZeebeSpec{DataDir: "/d"}.WithDefaults()
	if _, err := Run(ctx, f, z.ContainerSpec()); err != nil {
		t.Fatal(err)
	}
	_ = f.Exit(z.Name, 134)
	err := WaitReady(ctx, z.ReadinessURL(), ReadyOptions{Clock: clock.NewFake(time.Unix(0, 0)),
		Probe: func(context.Context, string) (bool, error) { return false, errors.New("refused") }, Alive: AliveCheck(f, z.Name)})
	if err == nil || !strings.Contains(err.Error(), "exit status 134") {
		t.Errorf("WaitReady = %v, want the crash reported", err)
	}
}

func waitWaiters(t *testing.T, clk *clock.Fake) {
	t.Helper()
	for i := 0; i < 1000 && clk.Waiters() == 0; i++ {
		time.Sleep(time.Millisecond)
	}
}

// The seed's crash banner, as the broker printed it.
var seedCrash = []string{
	"#  SIGBUS (0x7) at pc=0x00007f89ec4601a5, pid=2, tid=49",
	"# Problematic frame:",
	"# v  ~StubRoutines::updateBytesCRC32C 0x00007f89ec4601a5",
	"# An error report file with more information is saved as:",
	"# /usr/local/zeebe/hs_err_pid2.log",
}

func TestCopyHsErrFromLogPath(t *testing.T) {
	ctx := context.Background()
	f := fakeWithImage(t, DefaultZeebeImage)
	z := ZeebeSpec{DataDir: t.TempDir()}.WithDefaults()
	if _, err := Run(ctx, f, z.ContainerSpec()); err != nil {
		t.Fatal(err)
	}
	_ = f.AddLog(z.Name, Stdout, seedCrash...)
	_ = f.PutFile(z.Name, "/usr/local/zeebe/hs_err_pid2.log", []byte("SIGBUS (0x7)"))
	_ = f.Exit(z.Name, 134)
	dest := t.TempDir()
	got, err := CopyHsErr(ctx, f, z.Name, dest)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || filepath.Base(got[0]) != z.Name+"-hs_err_pid2.log" {
		t.Fatalf("copied %v", got)
	}
	if b, _ := os.ReadFile(got[0]); string(b) != "SIGBUS (0x7)" {
		t.Errorf("content %q", b)
	}
}

func TestCopyHsErrFallbacks(t *testing.T) {
	ctx := context.Background()
	f := fakeWithImage(t, DefaultZeebeImage)
	data := t.TempDir()
	// Named in the log but written to the data directory (-XX:ErrorFile).
	if err := os.WriteFile(filepath.Join(data, "hs_err_pid7.log"), []byte("from data dir"), 0o644); err != nil {
		t.Fatal(err)
	}
	z := ZeebeSpec{DataDir: data}.WithDefaults()
	if _, err := Run(ctx, f, z.ContainerSpec()); err != nil {
		t.Fatal(err)
	}
	_ = f.AddLog(z.Name, Stdout, "# /usr/local/zeebe/data/hs_err_pid7.log")
	got, err := CopyHsErr(ctx, f, z.Name, t.TempDir())
	if err != nil || len(got) != 1 {
		t.Fatalf("from mount: %v, %v", got, err)
	}
	// Not named in the log: found by listing the work directory.
	f2 := fakeWithImage(t, DefaultZeebeImage)
	if _, err := Run(ctx, f2, z.ContainerSpec()); err != nil {
		t.Fatal(err)
	}
	_ = f2.PutFile(z.Name, "/usr/local/zeebe/hs_err_pid3.log", []byte("x"))
	_ = f2.PutFile(z.Name, "/usr/local/zeebe/core.3", []byte("x"))
	if got, err := CopyHsErr(ctx, f2, z.Name, t.TempDir()); err != nil || len(got) != 1 || !strings.HasSuffix(got[0], "hs_err_pid3.log") {
		t.Fatalf("from listing: %v, %v", got, err)
	}
	// Nothing anywhere: ErrNotFound.
	f3 := fakeWithImage(t, DefaultZeebeImage)
	if _, err := Run(ctx, f3, z.ContainerSpec()); err != nil {
		t.Fatal(err)
	}
	if _, err := CopyHsErr(ctx, f3, z.Name, t.TempDir()); !errors.Is(err, ErrNotFound) {
		t.Errorf("no report: %v", err)
	}
}

func TestNFSServerSpecAndTraps(t *testing.T) {
	s := NFSServerSpec{ExportDir: "/srv/nfs", Debug: true, RunID: "r"}.WithDefaults()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	c := s.ContainerSpec()
	if !c.Privileged || c.Image != DefaultNFSServerImage || c.Env["NFS_SERVER_ALLOWED_CLIENTS"] != "10.88.0.0/12" || c.Env["NFS_SERVER_DEBUG"] != "1" {
		t.Errorf("spec %+v", c)
	}
	if !reflect.DeepEqual(c.Mounts, []Mount{{Source: "/srv/nfs", Target: "/mnt/data"}}) || c.Ports[0].HostPort != 2049 {
		t.Errorf("mounts/ports %+v %+v", c.Mounts, c.Ports)
	}
	codes := map[string]Trap{}
	for _, tr := range s.Traps() {
		codes[tr.Code] = tr
	}
	if !strings.Contains(codes["dnat-port-mapping"].Fix, "--match-original") {
		t.Errorf("dnat trap does not recommend --match-original: %+v", codes["dnat-port-mapping"])
	}
	if !strings.Contains(codes["pause-kernel-threads"].Detail, "kernel threads") {
		t.Errorf("pause trap: %+v", codes["pause-kernel-threads"])
	}
	in := Info{Name: "nfs", Labels: c.Labels}
	if w := PauseWarning(in); !strings.Contains(w, "will not stop NFS") {
		t.Errorf("pause warning %q", w)
	}
	if w := PauseWarning(Info{Labels: OwnedLabels("", RoleZeebe, nil)}); w != "" {
		t.Errorf("zeebe pause warning %q", w)
	}
	if err := (NFSServerSpec{ExportDir: "/x", HostPort: 70000}).WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "70000") {
		t.Errorf("bad port: %v", err)
	}
}

func TestNetnsName(t *testing.T) {
	if got := NetnsName("zeebe-0"); got != "nfslab-ctr-zeebe-0" {
		t.Errorf("got %s", got)
	}
	if got := NetnsName(strings.Repeat("x", 80)); len(got) != 64 {
		t.Errorf("len %d", len(got))
	}
}
