package backends

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/scenario"
)

const fakeProbeImage = "localhost/nfslab/probe:0123456789abcdef"

// containerTarget is a probe target whose JVMs run in the fake runtime.
func containerTarget(t *testing.T, cfg scenario.ProbeTarget) (*ProbeTarget, *container.Fake, string) {
	t.Helper()
	f := container.NewFake(nil)
	f.AddImage(fakeProbeImage)
	p := NewProbeTarget("/host/probe-cache/abc", t.TempDir(), cfg, nil)
	p.UseContainer(f, "nfs-x-20261202T000000.000Z")
	builds := 0
	p.proc.(*containerProbe).image = func(context.Context) (string, string, error) {
		builds++
		if builds > 1 {
			t.Errorf("the probe image was made %d times in one run", builds)
		}
		return fakeProbeImage, "/usr/lib/jvm/java-21/bin/java", nil
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p, f, t.TempDir()
}

// nthContainer waits until the run's n-th probe container runs.
func nthContainer(t *testing.T, f *container.Fake, n int) string {
	t.Helper()
	name := probeContainerName("nfs-x-20261202T000000.000Z", n)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if in, err := f.Inspect(context.Background(), name); err == nil && in.Running() {
			return name
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe container %s is not running after 5s; calls %v", name, f.Calls)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gone(t *testing.T, f *container.Fake, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := f.Inspect(context.Background(), name); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s was not removed", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func nextExit(t *testing.T, p *ProbeTarget) engine.Exit {
	t.Helper()
	select {
	case x := <-p.Exited():
		return x
	case <-time.After(5 * time.Second):
		t.Fatal("no exit reported")
	}
	return engine.Exit{}
}

// The probe in its container: the spec (nfslab's labels, the data
// directory bind-mounted, the image's java, no network, catatonit), the
// log into the detectors' lines, and a crash as today's probe reports it:
// exit 134 from podman's wait, SIGABRT, the hs_err report copied out into
// the log directory, the container removed.
func TestContainerProbeCrash(t *testing.T) {
	p, f, data := containerTarget(t, scenario.ProbeTarget{Rate: 100, Replay: true})
	if err := p.Start(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	name := nthContainer(t, f, 1)
	spec, err := f.SpecOf(name)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Image != fakeProbeImage || spec.Labels[container.LabelOwner] != container.OwnerValue ||
		spec.Labels[container.LabelRole] != container.RoleProbe || spec.Labels[container.LabelRun] != "nfs-x-20261202T000000.000Z" {
		t.Errorf("image %s labels %v", spec.Image, spec.Labels)
	}
	if len(spec.Mounts) != 1 || spec.Mounts[0] != (container.Mount{Source: data, Target: container.ProbeDataDir}) {
		t.Errorf("mounts %+v, want %s at %s", spec.Mounts, data, container.ProbeDataDir)
	}
	if spec.Network != container.NetworkNone || !spec.Init || spec.WorkDir != container.ProbeWorkDir {
		t.Errorf("network %q init %v workdir %q", spec.Network, spec.Init, spec.WorkDir)
	}
	cmd := strings.Join(spec.Command, " ")
	for _, want := range []string{"/usr/lib/jvm/java-21/bin/java ", "-XX:ErrorFile=/work/hs_err_pid%p.log", "-cp /opt/nfslab/probe JournalProbe",
		"--dir /data", "--rate 100"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command %q lacks %q", cmd, want)
		}
	}
	if strings.Contains(cmd, data) || strings.Contains(cmd, "--no-replay") {
		t.Errorf("command %q names the host directory or skips the replay", cmd)
	}

	_ = f.AddLog(name, container.Stdout, "probe: start pid=2 dir=/data", "probe: replay mapped segments=6")
	select {
	case ev := <-p.Events():
		if ev.Name != "replay-start" {
			t.Errorf("event %+v, want replay-start", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no replay-start event from the container's log")
	}
	_ = f.AddLog(name, container.Stdout, "#  SIGBUS (0x7) at pc=0x00007f, pid=2, tid=3", "# /work/hs_err_pid2.log")
	_ = f.PutFile(name, "/work/hs_err_pid2.log", []byte("SIGBUS (0x7) StubRoutines::updateBytesCRC32C journal-2.log"))
	if err := f.Exit(name, 134); err != nil {
		t.Fatal(err)
	}
	x := nextExit(t, p)
	if x.Name != "probe" || x.Code != 134 || x.Signal != syscall.SIGABRT.String() {
		t.Errorf("exit %+v, want probe 134 %s", x, syscall.SIGABRT)
	}
	var lines []string
	for len(p.Lines()) > 0 {
		l := <-p.Lines()
		if l.Source != "probe" {
			t.Errorf("line source %q", l.Source)
		}
		lines = append(lines, l.Text)
	}
	if !slices.Contains(lines, "# /work/hs_err_pid2.log") || !slices.Contains(lines, "probe: start pid=2 dir=/data") {
		t.Errorf("lines to the detectors: %q", lines)
	}
	copied := filepath.Join(p.LogDir, name+"-hs_err_pid2.log")
	if b, err := os.ReadFile(copied); err != nil || !strings.Contains(string(b), "updateBytesCRC32C") {
		t.Errorf("hs_err copy %s: %q, %v", copied, b, err)
	}
	gone(t, f, name)
	p.Close(context.Background())
	log, _ := os.ReadFile(filepath.Join(p.LogDir, "probe.log"))
	if !strings.Contains(string(log), "exit status 134 "+syscall.SIGABRT.String()+" hs_err="+copied) {
		t.Errorf("probe.log does not record the exit and the copy:\n%s", log)
	}
}

// Prefill, restart, pause and kill go through the same target logic: the
// prefill is a container of its own that must end with 0 before the probe
// starts, a restart replaces the container without reporting the old one's
// exit, pause is podman's freezer, kill is reported, and Close removes
// every probe container of the run by label.
func TestContainerProbeLifecycle(t *testing.T) {
	p, f, data := containerTarget(t, scenario.ProbeTarget{Prefill: 1 << 20, RecordSize: 1000})
	started := make(chan error, 1)
	go func() { started <- p.Start(context.Background(), data) }()
	pre := nthContainer(t, f, 1)
	spec, _ := f.SpecOf(pre)
	if cmd := strings.Join(spec.Command, " "); !strings.Contains(cmd, "--no-replay") || !strings.Contains(cmd, "--records 1036") {
		t.Errorf("prefill command %q", cmd)
	}
	_ = f.AddLog(pre, container.Stdout, "probe: append done records=1036 segments=1")
	_ = f.Exit(pre, 0)
	if err := <-started; err != nil {
		t.Fatalf("Start after the prefill container: %v", err)
	}
	gone(t, f, pre)
	first := nthContainer(t, f, 2)

	between := false
	if err := p.Restart(context.Background(), func(context.Context) error {
		if _, err := f.Inspect(context.Background(), first); err == nil {
			t.Errorf("container %s still exists while the target is stopped", first)
		}
		between = true
		return nil
	}); err != nil || !between {
		t.Fatalf("Restart: %v (between ran: %v)", err, between)
	}
	second := nthContainer(t, f, 3)
	select {
	case x := <-p.Exited():
		t.Errorf("the restart reported the old container's exit %+v", x)
	case <-time.After(50 * time.Millisecond):
	}

	if err := p.Control(context.Background(), scenario.ActionPause, ""); err != nil {
		t.Fatal(err)
	}
	if in, _ := f.Inspect(context.Background(), second); in.State != container.StatePaused {
		t.Errorf("after pause: %s", in.State)
	}
	if err := p.Control(context.Background(), scenario.ActionUnpause, ""); err != nil {
		t.Fatal(err)
	}
	if err := p.Control(context.Background(), scenario.ActionKill, ""); err != nil {
		t.Fatal(err)
	}
	if x := nextExit(t, p); x.Code != 137 || x.Signal != syscall.SIGKILL.String() {
		t.Errorf("exit after kill %+v, want 137 %s", x, syscall.SIGKILL)
	}
	if err := p.Control(context.Background(), scenario.ActionPause, ""); err == nil || !strings.Contains(err.Error(), "no probe container is running") {
		t.Errorf("pause with no container: %v", err)
	}

	// A container a crashed removal left behind goes with Close's cleanup.
	f.AddImage("other")
	left := container.ProbeSpec(probeContainerName("nfs-x-20261202T000000.000Z", 9), fakeProbeImage, "nfs-x-20261202T000000.000Z", data, []string{"java"})
	if _, err := container.Run(context.Background(), f, left); err != nil {
		t.Fatal(err)
	}
	stranger := container.Spec{Name: "theirs", Image: "other", Labels: map[string]string{container.LabelOwner: container.OwnerValue, container.LabelRun: "another-run"}}
	if _, err := container.Run(context.Background(), f, stranger); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	all, _ := f.List(context.Background(), nil)
	if len(all) != 1 || all[0].Name != "theirs" {
		t.Errorf("after Close: %+v, want only another run's container", all)
	}
}
