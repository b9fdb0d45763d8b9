package podman

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/detect"
	"github.com/nfslab/nfslab/pkg/faultfs"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/probe"

	"github.com/nfslab/nfslab/pkg/container"
)

// The workload of these tests is the shared JVM journal probe (pkg/probe,
// probe/JournalProbe.java), run in a container of the test image with its
// classes bind-mounted read-only and its data directory on a faultfs mount
// bind-mounted into the container: the seed's broker on faulty storage,
// reduced to the storage access pattern that matters.

const (
	journalClassDir = "/opt/journalprobe" // read-only bind mount of pkg/probe.Build's output
	journalDataDir  = "/data"             // the faultfs mount
	journalWorkDir  = "/work"             // -XX:ErrorFile: hs_err_pid<pid>.log lands here
)

// mountFaultfs mounts a faultfs under t.TempDir and unmounts it in cleanup
// (the test body may unmount it first; a second Unmount is harmless).
func mountFaultfs(t *testing.T, opts faultfs.Options) *faultfs.FS {
	t.Helper()
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := faultfs.Mount(backing, mnt, opts)
	if err != nil {
		t.Fatalf("mounting faultfs: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = f.Unmount(ctx)
	})
	return f
}

// journalSpec is a probe container running JournalProbe with cfg, exactly
// as pkg/probe runs it on the host (same JVM flags), on the faultfs mount.
func (e *podmanEnv) journalSpec(name, run string, f *faultfs.FS, cfg probe.Config) container.Spec {
	cfg.Java = "/opt/jre/bin/java"
	cfg.Dir = journalDataDir + "/journal"
	s := probeSpec(name, run)
	s.Command = probe.Command(journalClassDir, journalWorkDir, cfg)
	s.WorkDir = journalWorkDir
	s.Mounts = []container.Mount{
		{Source: e.journalClasses, Target: journalClassDir, ReadOnly: true},
		{Source: f.Mountpoint(), Target: journalDataDir},
	}
	return s
}

// journalRun is a probe container run to its end, its log streamed
// through pkg/detect's built-in detectors while it ran.
type journalRun struct {
	name  string
	code  int
	lines []container.LogLine
	hits  []journal.Hit
	// hitAfter is how long after the start each detector first fired.
	hitAfter map[string]time.Duration
	elapsed  time.Duration
}

func (r journalRun) text() string {
	var b strings.Builder
	for _, l := range r.lines {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

func (r journalRun) contains(s string) bool { return strings.Contains(r.text(), s) }

func (r journalRun) hit(name string) (journal.Hit, bool) {
	for _, h := range r.hits {
		if h.Detector == name {
			return h, true
		}
	}
	return journal.Hit{}, false
}

func (r journalRun) count(name string) int {
	n := 0
	for _, h := range r.hits {
		if h.Detector == name {
			n++
		}
	}
	return n
}

// journalCtr is a running probe container whose log streams through a
// detector Matcher.
type journalCtr struct {
	rt       container.Runtime
	r        journalRun
	start    time.Time
	mu       sync.Mutex // r.lines and r.hits grow while the stream runs
	m        *detect.Matcher
	logsDone chan error
}

// startJournal starts s and follows its log through pkg/detect's built-in
// detectors. onLine, if set, sees each line as it streams.
func startJournal(t *testing.T, ctx context.Context, rt container.Runtime, s container.Spec, onLine func(container.LogLine)) *journalCtr {
	t.Helper()
	c := &journalCtr{rt: rt, r: journalRun{name: s.Name, hitAfter: map[string]time.Duration{}}, logsDone: make(chan error, 1)}
	var err error
	c.m, err = detect.New(detect.Options{Source: s.Name, Clock: clock.Real{}}, func(h journal.Hit) {
		// Called from Line or Flush, with c.mu held.
		c.r.hits = append(c.r.hits, h)
		if _, ok := c.r.hitAfter[h.Detector]; !ok {
			c.r.hitAfter[h.Detector] = time.Since(c.start)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c.start = time.Now()
	if _, err := container.Run(ctx, rt, s); err != nil {
		t.Fatalf("run %s: %v", s.Name, err)
	}
	t.Cleanup(func() { _ = rt.Remove(context.Background(), s.Name, container.RemoveOptions{Force: true}) })
	go func() {
		c.logsDone <- rt.Logs(ctx, s.Name, container.LogOptions{Follow: true}, func(l container.LogLine) {
			c.mu.Lock()
			c.r.lines = append(c.r.lines, l)
			c.m.Line([]byte(l.Text))
			c.mu.Unlock()
			if onLine != nil {
				onLine(l)
			}
		})
	}()
	return c
}

// wait waits for the exit status and the end of the log stream.
func (c *journalCtr) wait(t *testing.T, ctx context.Context) journalRun {
	t.Helper()
	code, err := c.rt.Wait(ctx, c.r.name)
	if err != nil {
		t.Fatalf("wait %s: %v", c.r.name, err)
	}
	elapsed := time.Since(c.start)
	select {
	case err := <-c.logsDone:
		if err != nil {
			t.Errorf("log stream of %s ended with %v", c.r.name, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("log stream of %s did not end 10s after the container exited", c.r.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.Flush() // a banner at the very end of the stream
	r := c.r
	r.code, r.elapsed = code, elapsed
	t.Logf("%s: exit %d after %s, %d log lines, %d detector hits", r.name, r.code, r.elapsed.Round(time.Millisecond), len(r.lines), len(r.hits))
	return r
}

// runJournal runs s to its end.
func runJournal(t *testing.T, ctx context.Context, rt container.Runtime, s container.Spec) journalRun {
	t.Helper()
	return startJournal(t, ctx, rt, s, nil).wait(t, ctx)
}

// mountinfoHas reports whether path is a mount point in this mount
// namespace (read from /proc/self/mountinfo; never stats the path).
func mountinfoHas(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

var hsErrInWork = regexp.MustCompile(`^/work/hs_err_pid\d+\.log$`)

// TestPodmanJournalProbeSIGBUSOnFaultfs is the workshop's crash during
// replay, in a container: the journal probe appends segments to a faultfs
// volume; replays without a rule complete; with reads of journal-2.log
// failing from 512 KiB they complete only while the pages are cached, and
// once nfslab drops the cache the JVM dies of SIGBUS in the CRC32C stub.
// The crash is found in the streamed log by the jvm-sigbus detector, Wait
// reports 134, and the hs_err report is copied out. Cleanup leaves no
// container and no mount.
func TestPodmanJournalProbeSIGBUSOnFaultfs(t *testing.T) {
	e := podmanTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt := e.rt
	start := time.Now()
	// Keep-cache, as in pkg/faultfs's TestReplaySIGBUSOnColdPages: pages
	// stay cached across opens and containers until nfslab drops them.
	f := mountFaultfs(t, faultfs.Options{KeepCache: true, AttrTimeout: time.Hour, EntryTimeout: time.Hour})
	run := uniq("journal")
	cfg := probe.Config{SegmentSize: 1 << 20}
	spec := func(step string, mode probe.Mode) container.Spec {
		c := cfg
		c.Mode = mode
		if mode == probe.ModeAppendOnly {
			c.Records, c.Batch = 3000, 50
		}
		return e.journalSpec(uniq("nfslt-jp-"+step), run, f, c)
	}

	// 1. Append: 3000 records of 1008 bytes fill journal-1 and journal-2
	// (1 MiB each) and part of journal-3.
	app := runJournal(t, ctx, rt, spec("append", probe.ModeAppendOnly))
	if app.code != 0 || !app.contains("probe: append done records=3000 segments=3") {
		t.Fatalf("append: exit %d\n%s", app.code, app.text())
	}
	segs, err := filepath.Glob(filepath.Join(f.Backing(), "journal", "journal-*.log"))
	if err != nil || len(segs) != 3 {
		t.Fatalf("segments on the backing directory: %v, %v; want 3", segs, err)
	}

	// 2. Control: cold pages, no rule. The replay reads every page through
	// faultfs and completes, so the crash below is the rule's doing.
	if dropped, err := f.DropCacheGlob("journal/*.log"); err != nil || len(dropped) != 3 {
		t.Fatalf("DropCacheGlob = %v, %v", dropped, err)
	}
	ctl := runJournal(t, ctx, rt, spec("control", probe.ModeReplayOnly))
	if ctl.code != 0 || !ctl.contains("probe: replay done segments=3 records=3000") {
		t.Fatalf("control replay without a fault: exit %d, want 0\n%s", ctl.code, ctl.text())
	}
	if n := ctl.count(detect.JVMSigbus) + ctl.count(detect.HsErrFile); n != 0 {
		t.Fatalf("detectors fired on a clean replay: %+v", ctl.hits)
	}

	// 3. The second half of journal-2.log stops reading. No record header
	// starts at 512 KiB (records are 1008 bytes from offset 64), so the
	// first code to touch a failing page is the CRC32C stub.
	if _, err := f.Set(faultfs.Rule{ID: "eio", Op: faultfs.OpRead, PathGlob: "journal/journal-2.log",
		Errno: faultfs.Errno(syscall.EIO), Offset: 512 << 10}); err != nil {
		t.Fatal(err)
	}
	// Warm pages (read by the control replay) hide the fault.
	warm := runJournal(t, ctx, rt, spec("warm", probe.ModeReplayOnly))
	if warm.code != 0 || f.Stats()[0].Fired != 0 {
		t.Fatalf("replay from cached pages: exit %d, rule stats %+v; want 0 and no firing\n%s", warm.code, f.Stats(), warm.text())
	}

	// 4. Cold pages under the rule: SIGBUS in the CRC32C stub.
	if dropped, err := f.DropCacheGlob("journal/*.log"); err != nil || len(dropped) != 3 {
		t.Fatalf("DropCacheGlob = %v, %v", dropped, err)
	}
	crash := runJournal(t, ctx, rt, spec("crash", probe.ModeReplayOnly))
	if crash.code != 134 {
		t.Fatalf("replay of cold pages under the read fault: exit %d, want 134 (JVM abort after SIGBUS)\n%s", crash.code, crash.text())
	}
	if fired := f.Stats()[0].Fired; fired == 0 {
		t.Errorf("read rule never fired, yet the JVM crashed")
	}
	if !crash.contains("probe: replay segment=1/3") || crash.contains("probe: replay done") {
		t.Errorf("crash log should show segment 1 replayed and no end of replay:\n%s", crash.text())
	}
	h, ok := crash.hit(detect.JVMSigbus)
	if !ok {
		t.Fatalf("jvm-sigbus detector did not fire on the streamed log; hits %+v\n%s", crash.hits, crash.text())
	}
	if !strings.Contains(h.Fields["frame"], "StubRoutines::updateBytesCRC32C") {
		t.Errorf("jvm-sigbus frame = %q, want the CRC32C stub (evidence %q)", h.Fields["frame"], h.Evidence)
	}
	if !hsErrInWork.MatchString(h.Fields["hs_err"]) || h.Source != crash.name {
		t.Errorf("jvm-sigbus hit: hs_err %q source %q", h.Fields["hs_err"], h.Source)
	}
	if hf, ok := crash.hit(detect.HsErrFile); !ok || hf.Fields["path"] != h.Fields["hs_err"] {
		t.Errorf("hs-err-file hit %+v (found %v), want path %q", hf, ok, h.Fields["hs_err"])
	}
	dest := t.TempDir()
	files, err := container.CopyHsErr(ctx, rt, crash.name, dest, journalWorkDir)
	if err != nil || len(files) != 1 {
		t.Fatalf("copying hs_err out of %s: %v, %v", crash.name, files, err)
	}
	report, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SIGBUS (0x7)", "StubRoutines::updateBytesCRC32C", "journal-2.log"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("hs_err copy %s lacks %q", files[0], want)
		}
	}
	// The banner is the JVM's last output, so its event closes when the
	// stream ends.
	t.Logf("SIGBUS: jvm-sigbus hit %s after start, exit %d after %s; rule fired %d times; %s (%d bytes)",
		crash.hitAfter[detect.JVMSigbus].Round(time.Millisecond), crash.code, crash.elapsed.Round(time.Millisecond),
		f.Stats()[0].Fired, filepath.Base(files[0]), len(report))

	// 5. Cleanup leaves nothing: no container of the run, no mount.
	removed, err := container.Cleanup(ctx, rt, container.CleanupOptions{RunID: run, StopTimeout: time.Second})
	if err != nil || len(removed) != 4 {
		t.Errorf("cleanup of run %s removed %v, %v; want the 4 probe containers", run, removed, err)
	}
	if left, err := container.ListOwned(ctx, rt, run); err != nil || len(left) != 0 {
		t.Errorf("after cleanup: %d containers of run %s left (%v)", len(left), run, err)
	}
	uctx, ucancel := context.WithTimeout(ctx, 15*time.Second)
	defer ucancel()
	if err := f.Unmount(uctx); err != nil {
		t.Errorf("unmounting faultfs: %v", err)
	}
	if mountinfoHas(t, f.Mountpoint()) {
		t.Errorf("%s is still mounted after cleanup", f.Mountpoint())
	}
	t.Logf("journal probe SIGBUS test done in %s", time.Since(start).Round(time.Millisecond))
}

// TestPodmanJournalProbePause pauses the journal probe while it appends to
// a faultfs volume: its once-a-second progress lines stop while it is
// frozen and resume after unpause; it then finishes with exit 0.
func TestPodmanJournalProbePause(t *testing.T) {
	e := podmanTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt := e.rt
	start := time.Now()
	f := mountFaultfs(t, faultfs.Options{})
	run := uniq("journal-pause")
	name := uniq("nfslt-jp-pause")
	s := e.journalSpec(name, run, f, probe.Config{SegmentSize: 1 << 20, Rate: 1000, Batch: 50,
		Duration: 7 * time.Second, Mode: probe.ModeAppendOnly})

	var mu sync.Mutex
	var progress []time.Time // arrival of each "probe: append rate=..." line
	appends := func() int { mu.Lock(); defer mu.Unlock(); return len(progress) }
	waitAppends := func(n int, d time.Duration, what string) {
		t.Helper()
		deadline := time.Now().Add(d)
		for appends() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d progress lines within %s, want %d", what, appends(), d, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c := startJournal(t, ctx, rt, s, func(l container.LogLine) {
		if p, ok := probe.ParseProgress(l.Text); ok && p.Kind == "append" {
			mu.Lock()
			progress = append(progress, time.Now())
			mu.Unlock()
		}
	})
	waitAppends(2, 30*time.Second, "before pause")
	if err := rt.Pause(ctx, name); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if in, err := rt.Inspect(ctx, name); err != nil || in.State != container.StatePaused {
		t.Errorf("state while paused = %s, %v", in.State, err)
	}
	time.Sleep(300 * time.Millisecond) // lines already written drain
	before := appends()
	time.Sleep(2500 * time.Millisecond) // 2.5 reporting intervals
	frozen := appends()
	if err := rt.Unpause(ctx, name); err != nil {
		t.Fatalf("unpause: %v", err)
	}
	if frozen != before {
		t.Errorf("paused probe kept reporting: %d progress lines became %d in 2.5s", before, frozen)
	}
	unpausedAt := time.Now()
	waitAppends(frozen+1, 10*time.Second, "after unpause")
	mu.Lock()
	resumeAfter := progress[frozen].Sub(unpausedAt)
	mu.Unlock()

	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	r := c.wait(t, wctx)
	if r.code != 0 || !r.contains("probe: append done") {
		t.Fatalf("probe after pause/unpause: exit %d, want 0\n%s", r.code, r.text())
	}
	removed, err := container.Cleanup(ctx, rt, container.CleanupOptions{RunID: run, StopTimeout: time.Second})
	if err != nil || len(removed) != 1 || removed[0] != name {
		t.Errorf("cleanup removed %v, %v; want [%s]", removed, err, name)
	}
	t.Logf("pause: %d progress lines before, none during 2.5s paused, next %s after unpause; done in %s",
		frozen, resumeAfter.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
