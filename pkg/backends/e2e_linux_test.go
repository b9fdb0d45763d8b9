package backends

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/report"
	"github.com/nfslab/nfslab/pkg/scenario"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster"
)

var probeCache string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "nfslab-lab-probe-")
	if err != nil {
		panic(err)
	}
	probeCache = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func e2eGuards(t *testing.T) {
	t.Helper()
	privtest.Short(t)
	privtest.Root(t)
	privtest.Tools(t, "java", "javac")
	privtest.FUSE(t)
}

// runShipped runs a shipped scenario for real: faultfs over a backing
// directory in t.TempDir(), the JVM probe, pkg/detect on its output.
func runShipped(t *testing.T, name string, report Reporter) *Run {
	t.Helper()
	return runShippedWith(t, name, report, nil, cluster.Options{})
}

// runShippedWith is runShipped with --set overrides and container seams.
func runShippedWith(t *testing.T, name string, report Reporter, sets []string, ctr cluster.Options) *Run {
	t.Helper()
	sc, err := scenario.LoadFile(filepath.Join("../../scenarios", name+".yaml"), sets...)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var notes []string
	opts := engine.Options{
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnEvent: func(n engine.Note) { notes = append(notes, n.Time.Format("15:04:05.000")+" "+n.Kind+" "+n.Text) },
	}
	start := time.Now()
	run, err := Execute(ctx, sc, out, 0, opts, func(ctx context.Context, dir string) (engine.Backends, error) {
		// A private faultfs root and records: other tests share /run/nfslab.
		return Build(ctx, sc, Config{RunDir: dir, ProbeCache: probeCache, Zeebe: ctr,
			FaultfsRoot: filepath.Join(out, "faultfs"), Records: proctrack.NewStore(filepath.Join(out, "proc"))})
	}, report)
	for _, n := range notes {
		t.Log(n)
	}
	if err != nil {
		t.Fatal(err)
	}
	res := run.Result
	t.Logf("%s: passed=%v in %v (%s); step lag p50 %v p99 %v", name, res.Passed, time.Since(start).Round(time.Millisecond), res.Reason, res.Lag.P50, res.Lag.P99)
	for _, v := range res.Verdicts {
		t.Logf("  %s: %s: %s", v.State, v.Name, v.Detail)
	}
	if res.Err != nil {
		t.Fatalf("run error: %v", res.Err)
	}
	if !res.Passed {
		logs, _ := os.ReadFile(filepath.Join(run.Dir, "logs", "probe.log"))
		t.Fatalf("%s did not pass; probe log tail:\n%s", name, tail(string(logs), 40))
	}
	recs, err := journal.ReadFile(filepath.Join(run.Dir, journal.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Type != journal.TypeRunStart || recs[len(recs)-1].Type != journal.TypeRunEnd || !recs[len(recs)-1].End.Passed {
		t.Errorf("journal does not run from run-start to a passed run-end")
	}
	if report != nil {
		md, err := os.ReadFile(filepath.Join(run.Dir, "report.md"))
		if err != nil || !strings.Contains(string(md), sc.Metadata.Title) {
			t.Errorf("report.md missing or without the title: %v", err)
		}
		h, err := os.ReadFile(filepath.Join(run.Dir, "report.html"))
		if err != nil || !strings.Contains(string(h), "<svg") || strings.Contains(string(h), "http://") && strings.Contains(string(h), "<script src=") {
			t.Errorf("report.html missing, without plots, or loading from the network: %v", err)
		}
	}
	// Nothing of the run stays mounted (the run directory and the faultfs
	// root are both below out) or recorded.
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), out) {
		t.Errorf("a mount below %s is left after the run", out)
	}
	if es, err := proctrack.NewStore(filepath.Join(out, "proc")).List(); err != nil || len(es) > 0 {
		t.Errorf("records left after the run: %+v (%v)", es, err)
	}
	return run
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func verdict(t *testing.T, r *Run, kind string) engine.Verdict {
	t.Helper()
	for _, v := range r.Result.Verdicts {
		if v.Kind == kind {
			return v
		}
	}
	t.Fatalf("no %s verdict", kind)
	return engine.Verdict{}
}

// TestFaultfsFullDropE2E: EIO on writeback and fsync makes the probe's
// MappedByteBuffer.force() fail with the JVM's real msync IOException, and
// the msync-ioexception detector sees it.
func TestFaultfsFullDropE2E(t *testing.T) {
	e2eGuards(t)
	r := runShipped(t, "faultfs-full-drop", report.WriteDir)
	v := verdict(t, r, scenario.ExpectDetectorFires)
	if !strings.Contains(v.Detail, "msync") {
		t.Errorf("verdict evidence %q does not show the msync failure", v.Detail)
	}
}

// TestFaultfsDropOnReplayE2E: read EIO on cold pages during the replay
// crashes the JVM with SIGBUS and exit status 134.
func TestFaultfsDropOnReplayE2E(t *testing.T) {
	e2eGuards(t)
	r := runShipped(t, "faultfs-drop-on-replay", report.WriteDir)
	if v := verdict(t, r, scenario.ExpectExitCode); !strings.Contains(v.Detail, "134") {
		t.Errorf("exit verdict %q", v.Detail)
	}
	hs, _ := filepath.Glob(filepath.Join(r.Dir, "logs", "hs_err_pid*.log"))
	if len(hs) == 0 {
		t.Error("no hs_err_pid*.log in the run's logs")
	}
}
