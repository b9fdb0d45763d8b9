package backends

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/container/podman"
	"github.com/nfslab/nfslab/pkg/probe"
	"github.com/nfslab/nfslab/pkg/report"
	"github.com/nfslab/nfslab/pkg/scenario"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster"
)

// TestProbeContainerReal runs the probe target in a real container: a
// podman service of the test's own (private storage), nfslab's probe
// image made from this machine's JRE, the journal on a bind-mounted
// directory. It prefills, appends, is killed (exit 137 from podman's
// wait) and leaves no container.
func TestProbeContainerReal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rt, svc, dir, log := privatePodman(t, ctx)
	classDir, err := probe.Build(ctx, "javac", probeCache)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	p := NewProbeTarget(classDir, filepath.Join(dir, "logs"), scenario.ProbeTarget{SegmentSize: 1 << 20, Rate: 2000, Batch: 50, Prefill: 2 << 20}, nil)
	p.UseContainer(rt, "probectr-real")
	start := time.Now()
	if err := p.Start(ctx, data); err != nil {
		t.Fatalf("Start: %v\nservice log:\n%s", err, log.String())
	}
	t.Logf("image and prefill in %s", time.Since(start).Round(time.Millisecond))
	segs, _ := filepath.Glob(filepath.Join(data, "journal-*.log"))
	if len(segs) < 2 {
		t.Errorf("prefill of 2 MB wrote %d segments in the bind-mounted directory", len(segs))
	}
	deadline := time.After(90 * time.Second)
	appends := 0
	for appends < 2 {
		select {
		case l := <-p.Lines():
			if pr, ok := probe.ParseProgress(l.Text); ok && pr.Kind == "append" {
				appends++
			}
		case x := <-p.Exited():
			t.Fatalf("probe exited: %+v", x)
		case <-deadline:
			t.Fatalf("no append progress within 90s; service log:\n%s", log.String())
		}
	}
	t.Logf("appending %s after the start", time.Since(start).Round(time.Millisecond))
	if err := p.Control(ctx, scenario.ActionKill, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case x := <-p.Exited():
		if x.Code != 137 {
			t.Errorf("exit after kill: %+v, want 137", x)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after kill")
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left, err := container.ListOwned(ctx, rt, "probectr-real"); err != nil || len(left) != 0 {
		t.Errorf("containers left: %+v, %v", left, err)
	}
	// The service takes the mounts its storage made with it.
	if err := svc.Stop(); err != nil {
		t.Error(err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), dir) {
		t.Errorf("mounts left below %s after the service stopped", dir)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// privatePodman starts a podman service of the test's own, with storage in
// a temporary directory (the machine's podman storage stays untouched),
// stopped with the test.
func privatePodman(t *testing.T, ctx context.Context) (container.Runtime, *podman.Service, string, *lockedBuffer) {
	t.Helper()
	privtest.Short(t)
	privtest.Root(t)
	privtest.Tools(t, "podman", "runc", "conmon", "catatonit", "java", "javac", "ldd")
	dir, err := os.MkdirTemp("", "nfslab-probectr-")
	if err != nil {
		t.Fatal(err)
	}
	log := &lockedBuffer{}
	svc, err := podman.StartService(ctx, podman.ServiceOptions{Socket: filepath.Join(dir, "podman.sock"),
		Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "runroot"), TmpDir: filepath.Join(dir, "tmp"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = svc.Stop()
		os.RemoveAll(dir)
	})
	rt, err := podman.Connect(ctx, svc.URI)
	if err != nil {
		t.Fatal(err)
	}
	return rt, svc, dir, log
}

// TestFaultfsDropOnReplayContainerE2E runs the shipped faultfs twin of the
// replay crash with the probe in containers (--set
// target.probe.container=true): the faultfs mount bind-mounted as the data
// directory, the restart a new container, SIGBUS in the CRC32C stub from the
// streamed log, 134 from podman's wait, the hs_err report copied out, and
// no container of the run left.
func TestFaultfsDropOnReplayContainerE2E(t *testing.T) {
	e2eGuards(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rt, _, _, _ := privatePodman(t, ctx)
	r := runShippedWith(t, "faultfs-drop-on-replay", report.WriteDir, []string{"target.probe.container=true"},
		cluster.Options{Runtime: func(context.Context) (container.Runtime, error) { return rt, nil }})
	if v := verdict(t, r, scenario.ExpectExitCode); !strings.Contains(v.Detail, "134") {
		t.Errorf("exit verdict %q", v.Detail)
	}
	hs, _ := filepath.Glob(filepath.Join(r.Dir, "logs", "nfslab-probe-*-hs_err_pid*.log"))
	if len(hs) != 1 {
		t.Fatalf("hs_err copies in the run's logs: %v, want one", hs)
	}
	if b, err := os.ReadFile(hs[0]); err != nil || !strings.Contains(string(b), "SIGBUS") {
		t.Errorf("%s: %v, or no SIGBUS in it", hs[0], err)
	}
	if left, err := container.ListOwned(ctx, rt, filepath.Base(r.Dir)); err != nil || len(left) != 0 {
		t.Errorf("containers of the run left: %+v, %v", left, err)
	}
}
