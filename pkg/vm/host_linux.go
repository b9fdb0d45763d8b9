package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/probe"
)

// BuildTools are the programs an image build needs besides qemu-img.
var BuildTools = []string{"debootstrap", "mkfs.ext4"}

// CheckTools reports the named programs missing from PATH, and refuses a
// caller that is not root (debootstrap and the 9p share run as root).
func CheckTools(tools ...string) error {
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the lab VM needs %s on PATH (apt-get install debootstrap e2fsprogs qemu-utils qemu-system-x86)", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		return errors.New("the lab VM needs root: debootstrap and the 9p share run as root")
	}
	return nil
}

// LoadOrBuild returns spec's image from cacheDir, building it only when
// no cached image exists: only then are debootstrap and a mirror needed,
// and only then is builder called. spec must be valid.
func LoadOrBuild(ctx context.Context, spec ImageSpec, cacheDir string, builder func() (Builder, error), log *slog.Logger) (Image, error) {
	if err := CheckTools("qemu-img", QEMUBinary); err != nil {
		return Image{}, err
	}
	if im, err := LoadImage(filepath.Join(cacheDir, spec.Key())); err == nil {
		if log != nil {
			log.Info("using cached vm image", "dir", im.Dir, "kernel", im.KernelRelease)
		}
		return im, nil
	}
	if err := CheckTools(BuildTools...); err != nil {
		return Image{}, err
	}
	b, err := builder()
	if err != nil {
		return Image{}, err
	}
	return b.Build(ctx, spec, false)
}

// HasEngine reports whether the nfslab binary has the scenario engine
// (its `run` command); a build without it runs the smoke test instead.
func HasEngine(ctx context.Context, binary string) bool {
	return exec.CommandContext(ctx, binary, "run", "--help").Run() == nil
}

// ErrStepsFailed marks a boot whose guest reported failed steps.
var ErrStepsFailed = errors.New("failed in the lab VM")

// Host is `nfslab vm run` on the host side: one boot of Session.Image
// running a job, then everything the guest wrote brought back under Out.
type Host struct {
	Session Session
	// Binary is the static nfslab executable the guest runs.
	Binary string
	// Files maps share paths to host files or directories (scenarios, test
	// binaries); Run adds the compiled journal probe.
	Files map[string]string
	// Out receives the run directories and vm-<UTC stamp>/ (status, step
	// logs, console log).
	Out     string
	Timeout time.Duration
	// HangTimeout ends a boot whose agent stopped beating (0:
	// DefaultHangTimeout); the steps it did not finish get one more boot.
	HangTimeout time.Duration
	// KeepWork keeps the work directory (share, overlay, console log).
	KeepWork bool
	// BuildProbe compiles the journal probe for the guest (default
	// probe.Build with its default javac and cache).
	BuildProbe func(ctx context.Context) (string, error)
	// Boot boots the VM once (default Session.Run).
	Boot func(ctx context.Context, in Input) (Result, error)
}

// Run sweeps work directories left by killed runs, boots the VM once for
// job, brings back what the guest wrote (whatever happened), writes the
// summary to w, and returns the boot's error, the collection's, or one
// wrapping ErrStepsFailed naming the failed steps.
func (h Host) Run(ctx context.Context, job Job, w io.Writer) error {
	return h.RunAll(ctx, []Job{job}, w)
}

// runBoot is one boot of RunAll: job on the probe compiled in classDir.
func (h Host) runBoot(ctx context.Context, job Job, classDir string, w io.Writer) error {
	clk, log := h.clockAndLog()
	work, err := MakeWork(h.Session.Image.Dir, "run-")
	if err != nil {
		return err
	}
	if h.KeepWork {
		defer DisownWork(work)
	} else {
		defer os.RemoveAll(work)
	}
	files := map[string]string{}
	for k, v := range h.Files {
		files[k] = v
	}
	files["probe"] = classDir
	files[filepath.Join(ProbeCacheDir, filepath.Base(classDir))] = classDir
	boot := h.Boot
	if boot == nil {
		boot = h.Session.Run
	}
	in := Input{Job: job, Binary: h.Binary, WorkDir: work, Timeout: h.Timeout, HangTimeout: h.HangTimeout, Files: files}
	res, runErr := boot(ctx, in)
	var died *guestDeath
	if p, ok := readGuestDeath(res); ok && !res.Status.Complete && ctx.Err() == nil {
		died, res, runErr = bootAgain(ctx, boot, in, res, p, log)
	}
	c, err := Collect(res, h.Out, clk.Now())
	if err != nil && c.VMDir == "" {
		return err
	}
	if died != nil {
		died.write(w, c.VMDir)
	}
	WriteSummary(w, res, c)
	switch {
	case runErr != nil:
		return runErr
	case err != nil:
		return err
	}
	return stepsErr(res.Status)
}

// clockAndLog returns the session's clock and logger, or the real clock
// and a logger that discards.
func (h Host) clockAndLog() (clock.Clock, *slog.Logger) {
	clk, log := h.Session.Clock, h.Session.Log
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return clk, log
}

// stepsErr names the steps that failed, wrapping ErrStepsFailed.
func stepsErr(st Status) error {
	if failed := st.Failed(); len(failed) > 0 {
		return fmt.Errorf("%d of %d %w: %s", len(failed), len(st.Steps), ErrStepsFailed, strings.Join(failed, ", "))
	}
	return nil
}

// Collected is where a boot's results were put on the host.
type Collected struct {
	// VMDir holds the status, the step logs and console.log.
	VMDir string
	// Runs are the run directories the guest wrote, moved below out.
	Runs []string
}

// Collect brings back what the guest wrote in res's share: its run
// directories into out, its status, step logs and console log into
// out/vm-<UTC stamp of now>/. A missing file is skipped: a guest that
// never booted wrote none. The error is the run directories'; VMDir is
// empty only if that directory could not be made.
func Collect(res Result, out string, now time.Time) (Collected, error) {
	vmDir, err := newVMDir(out, now)
	if err != nil {
		return Collected{}, err
	}
	runs, err := CollectRuns(res.ShareDir, out)
	for _, name := range []string{StatusFile, "logs"} {
		src := filepath.Join(res.ShareDir, name)
		if _, err := os.Stat(src); err == nil {
			_ = os.Rename(src, filepath.Join(vmDir, name))
		}
	}
	if res.ConsoleLog != "" {
		_ = os.Rename(res.ConsoleLog, filepath.Join(vmDir, "console.log"))
		for _, name := range deadConsoles {
			_ = os.Rename(filepath.Join(filepath.Dir(res.ConsoleLog), name), filepath.Join(vmDir, name))
		}
	}
	return Collected{VMDir: vmDir, Runs: runs}, err
}

// newVMDir makes out/vm-<UTC stamp of now>/, or vm-<stamp>-2, -3, ...
// when a boot that ended in the same second (another of RunAll's, or
// another vm run into the same out) has it.
func newVMDir(out string, now time.Time) (string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", out, err)
	}
	base := filepath.Join(out, "vm-"+now.UTC().Format("20060102T150405Z"))
	for i := 1; ; i++ {
		dir := base
		if i > 1 {
			dir = fmt.Sprintf("%s-%d", base, i)
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, fs.ErrExist) || i >= 100 {
			return "", fmt.Errorf("creating %s: %w", dir, err)
		}
	}
}

// RunAll sweeps work directories left by killed runs and compiles the
// probe, once, then runs each job as Run describes, in boots of the same
// image side by side (vm run --jobs). With more than one job each boot's
// console lines are prefixed with [K/N], and each boot's summary is
// written to w when all have ended, in jobs' order, under a line naming
// its steps. The error joins the boots' errors.
func (h Host) RunAll(ctx context.Context, jobs []Job, w io.Writer) error {
	clk, log := h.clockAndLog()
	if swept, err := SweepWork(h.Session.Image.Dir, 24*time.Hour, clk.Now(), proctrack.Linux{}); err != nil {
		log.Warn("sweeping vm work dirs left by killed runs", "err", err)
	} else if len(swept) > 0 {
		log.Info("removed vm work dirs left by killed runs", "dirs", swept)
	}
	build := h.BuildProbe
	if build == nil {
		build = func(ctx context.Context) (string, error) { return probe.Build(ctx, "", "") }
	}
	classDir, err := build(ctx)
	if err != nil {
		return fmt.Errorf("compiling the journal probe for the guest: %w", err)
	}
	if len(jobs) == 1 {
		return h.runBoot(ctx, jobs[0], classDir, w)
	}
	console := h.Session.Console
	if console != nil {
		console = &syncWriter{w: console}
	}
	errs := make([]error, len(jobs))
	sums := make([]bytes.Buffer, len(jobs))
	var wg sync.WaitGroup
	for k, job := range jobs {
		b := h
		tag := fmt.Sprintf("[%d/%d] ", k+1, len(jobs))
		if console != nil {
			lw := &lineWriter{prefix: tag, out: console}
			defer lw.Flush()
			b.Session.Console = lw
		}
		if b.Session.Log != nil {
			b.Session.Log = b.Session.Log.With("boot", fmt.Sprintf("%d/%d", k+1, len(jobs)))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = b.runBoot(ctx, job, classDir, &sums[k])
		}()
	}
	wg.Wait()
	for k, job := range jobs {
		names := make([]string, len(job.Steps))
		for i, st := range job.Steps {
			names[i] = st.Name
		}
		fmt.Fprintf(w, "vm: boot %d of %d: %s\n", k+1, len(jobs), strings.Join(names, ", "))
		_, _ = w.Write(sums[k].Bytes())
		if errs[k] != nil {
			errs[k] = fmt.Errorf("boot %d of %d: %w", k+1, len(jobs), errs[k])
		}
	}
	return errors.Join(errs...)
}

// syncWriter serialises writes of the boots' console lines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// WriteSummary prints the boot, each step's verdict (with earlier
// attempts and anything left behind) and the run directories.
func WriteSummary(w io.Writer, res Result, c Collected) {
	fmt.Fprintf(w, "vm: accel %s, boot %s, total %s; console and step logs in %s\n",
		res.Accel, res.BootTime.Round(100*time.Millisecond), res.Total.Round(time.Second), c.VMDir)
	for _, st := range res.Status.Steps {
		fmt.Fprintf(w, "%s %s (%s)", st.Verdict, st.Name, st.Duration.D().Round(time.Second))
		switch {
		case st.KilledAfter > 0: // a crash trial: the kill is the plan
			fmt.Fprintf(w, " killed after %s, heal --all exit %d", st.KilledAfter.D().Round(100*time.Millisecond), st.HealExit)
			if st.Error != "" {
				fmt.Fprintf(w, " %s", st.Error)
			}
		case st.ExitCode != 0 || st.Error != "":
			fmt.Fprintf(w, " exit %d %s", st.ExitCode, st.Error)
		}
		if len(st.Earlier) > 0 {
			fmt.Fprintf(w, " on attempt %d", len(st.Earlier)+1)
		}
		fmt.Fprintln(w)
		for i, e := range st.Earlier {
			fmt.Fprintf(w, "    attempt %d: %s exit %d after %s", i+1, e.Verdict, e.ExitCode, e.Duration.D().Round(time.Second))
			if e.Error != "" {
				fmt.Fprintf(w, " %s", e.Error)
			}
			if e.Log != "" {
				fmt.Fprintf(w, ", log %s", filepath.Join(c.VMDir, e.Log))
			}
			fmt.Fprintln(w)
		}
		for _, l := range st.Leftovers {
			fmt.Fprintf(w, "    left behind: %s\n", l)
		}
	}
	for _, r := range c.Runs {
		fmt.Fprintf(w, "run dir: %s\n", r)
	}
}

// CheckMemory refuses n boots of memMB MiB each when this machine's
// MemAvailable (/proc/meminfo) is less: qemu would be OOM-killed mid-run
// instead. A meminfo it cannot read is not an error.
func CheckMemory(n, memMB int) error {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "MemAvailable:" {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil
		}
		if need := int64(n) * int64(memMB) * 1024; need > kb {
			return fmt.Errorf("%d boots of %d MiB need %d MiB, but only %d MiB are available (MemAvailable): use fewer --jobs or less --memory", n, memMB, need/1024, kb/1024)
		}
		return nil
	}
	return nil
}
