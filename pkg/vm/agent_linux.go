package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

// Agent runs inside the guest: it executes the job on the share and
// reports. It never powers off itself: the guest init does that after it.
type Agent struct {
	Share   string
	Console io.Writer
	Clock   clock.Clock
	// Snap takes a leftover snapshot; nil means the real one.
	Snap func(ctx context.Context) (Snapshot, error)
	// Prime runs once before the first snapshot; nil means PrimeTables.
	Prime func(ctx context.Context)
}

// PrimeTables lists every iptables table once, so that tables the kernel
// creates on first use exist before the first snapshot, and lets ip make
// its /run/netns mount point (made on the first `ip netns add`, never
// removed) for the same reason.
func PrimeTables(ctx context.Context) {
	_ = cmdrun.Run(ctx, "modprobe", "ifb", "numifbs=0") // else loading ifb (nfslab delay --dir in) makes ifb0, ifb1 here
	if cmdrun.Run(ctx, "ip", "netns", "add", "nfslab-agent-prime") == nil {
		_ = cmdrun.Run(ctx, "ip", "netns", "delete", "nfslab-agent-prime")
	}
	for _, t := range []string{"filter", "nat", "mangle", "raw"} {
		_ = cmdrun.Run(ctx, "iptables", "-w", "-t", t, "-S")
		_ = cmdrun.Run(ctx, "ip6tables", "-w", "-t", t, "-S")
	}
}

// Run executes every step, even after a failure, and writes status.json
// after each one so a crash mid-job still leaves a record.
func (a Agent) Run(ctx context.Context) error {
	snap := a.Snap
	if snap == nil {
		snap = TakeSnapshot
	}
	b, err := os.ReadFile(filepath.Join(a.Share, JobFile))
	if err != nil {
		return fmt.Errorf("reading job: %w", err)
	}
	var job Job
	if err := json.Unmarshal(b, &job); err != nil {
		return fmt.Errorf("decoding job: %w", err)
	}
	if err := job.Validate(); err != nil {
		return err
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	st := Status{Kernel: unix.ByteSliceToString(uts.Release[:])}
	fmt.Fprintf(a.Console, "nfslab-agent: start kernel=%s steps=%d\n", st.Kernel, len(job.Steps))
	// The host reads the heartbeat to tell a slow guest from a dead one.
	bctx, stopBeat := context.WithCancel(ctx)
	defer stopBeat()
	go Beat(bctx, a.Clock, filepath.Join(a.Share, HeartbeatFile), HeartbeatEvery)
	prime := a.Prime
	if prime == nil {
		prime = PrimeTables
	}
	prime(ctx)
	if err := os.MkdirAll(filepath.Join(a.Share, "logs"), 0o755); err != nil {
		return fmt.Errorf("creating log dir: %w", err)
	}
	for _, s := range job.Steps {
		r := a.attempts(ctx, s, snap)
		st.Steps = append(st.Steps, r)
		fmt.Fprintf(a.Console, "nfslab-agent: step %s: %s (exit %d, %s)\n", r.Name, r.Verdict, r.ExitCode, r.Duration.D().Round(time.Millisecond))
		for _, l := range r.Leftovers {
			fmt.Fprintf(a.Console, "nfslab-agent: step %s left behind %s\n", r.Name, l)
		}
		if err := a.writeStatus(st); err != nil {
			return err
		}
	}
	st.Complete = true
	if err := a.writeStatus(st); err != nil {
		return err
	}
	line, _ := json.Marshal(st)
	fmt.Fprintf(a.Console, "%s%s\n", StatusMarker, line)
	return nil
}

// attempts runs s, and again up to s.Retries times while an attempt fails
// in a retryable way. The result is the last attempt's, with the earlier
// ones (and their logs, renamed NAME.attemptN.log) kept in Earlier.
func (a Agent) attempts(ctx context.Context, s Step, snap func(context.Context) (Snapshot, error)) StepResult {
	var earlier []StepResult
	for n := 1; ; n++ {
		r := a.step(ctx, s, snap)
		if r.Verdict == Pass || n > s.Retries || !r.retryable() || ctx.Err() != nil {
			r.Earlier = earlier
			return r
		}
		kept := filepath.Join("logs", fmt.Sprintf("%s.attempt%d.log", s.Name, n))
		if err := os.Rename(filepath.Join(a.Share, r.Log), filepath.Join(a.Share, kept)); err == nil {
			r.Log = kept
		}
		fmt.Fprintf(a.Console, "nfslab-agent: step %s: attempt %d failed (exit %d), running it again; its log is %s\n", s.Name, n, r.ExitCode, r.Log)
		earlier = append(earlier, r)
	}
}

func (a Agent) step(ctx context.Context, s Step, snap func(context.Context) (Snapshot, error)) StepResult {
	r := StepResult{Name: s.Name, Argv: s.Argv, Started: a.Clock.Now().UTC(), Log: filepath.Join("logs", s.Name+".log")}
	before, err := snap(ctx)
	if err != nil {
		r.ExitCode, r.Error, r.Verdict = -1, "snapshot before step: "+err.Error(), Fail
		return r
	}
	logf, err := os.Create(filepath.Join(a.Share, r.Log))
	if err != nil {
		r.ExitCode, r.Error, r.Verdict = -1, err.Error(), Fail
		return r
	}
	defer logf.Close()
	argv := append([]string(nil), s.Argv...)
	switch {
	case argv[0] == "nfslab":
		argv[0] = filepath.Join(a.Share, "bin", "nfslab")
	case !filepath.IsAbs(argv[0]) && strings.Contains(argv[0], "/"):
		argv[0] = filepath.Join(a.Share, argv[0]) // e.g. tests/nfsserver.test
	}
	sctx, cancel := context.WithTimeout(ctx, s.Timeout.D())
	defer cancel()
	cmd := cmdrun.Command(sctx, argv[0], argv[1:]...)
	cmd.Dir = a.Share
	cmd.Env = append(cmd.Env, "NFSLAB_VM=1", "NFSLAB_SHARE="+a.Share)
	cmd.Env = append(cmd.Env, s.Env...)
	lw := &lineWriter{prefix: "[" + s.Name + "] ", out: a.Console}
	var trial *crashTrial
	if s.Crash != nil {
		trial = newCrashTrial(*s.Crash)
		lw.onLine = trial.line
	}
	cmd.Stdout = io.MultiWriter(logf, lw)
	cmd.Stderr = cmd.Stdout
	// Its own process group, so a timeout ends the step's children too.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	runErr := cmd.Start()
	if runErr == nil {
		kctx, stop := context.WithCancel(sctx)
		var killing sync.WaitGroup
		if trial != nil {
			killing.Go(func() { trial.kill(kctx, a.Clock, cmd.Process, r.Started) })
		}
		runErr = cmd.Wait()
		stop()
		// The kill is recorded after the signal, and the command can be
		// waited for in between: read the record only once kill returned.
		killing.Wait()
	}
	lw.Flush()
	r.Duration = duration.Duration(a.Clock.Now().Sub(r.Started))
	var ee *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &ee):
		r.ExitCode = ee.ExitCode()
	default:
		r.ExitCode, r.Error = -1, runErr.Error()
	}
	if sctx.Err() != nil && ctx.Err() == nil {
		r.Error = "timed out after " + s.Timeout.D().String()
	}
	if trial != nil {
		a.finishCrash(ctx, s, trial, logf, lw, &r)
	}
	after, err := snap(ctx)
	if err != nil {
		r.Error = strings.TrimSpace(r.Error + "; snapshot after step: " + err.Error())
	}
	r.Leftovers = Leftovers(before, after)
	r.Verdict = Pass
	failed := r.ExitCode != 0
	if trial != nil {
		failed = r.KilledAfter == 0 || r.HealExit != 0
	}
	if failed || r.Error != "" || len(r.Leftovers) > 0 {
		r.Verdict = Fail
	}
	return r
}

func (a Agent) writeStatus(st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding status: %w", err)
	}
	p := filepath.Join(a.Share, StatusFile)
	f, err := os.Create(p + ".tmp")
	if err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing status: %w", err)
	}
	_ = f.Sync()
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	return os.Rename(p+".tmp", p)
}

// TakeSnapshot reads the guest's state through the usual tools.
func TakeSnapshot(ctx context.Context) (Snapshot, error) {
	var s Snapshot
	out := func(name string, args ...string) string {
		b, _ := cmdrun.Output(ctx, name, args...)
		return string(b)
	}
	s.Rules = append(NfslabRules(out("iptables-save")), NfslabRules(out("ip6tables-save"))...)
	s.Routes = append(NonEmptyLines(out("ip", "-o", "route", "show", "table", "all")),
		NonEmptyLines(out("ip", "-6", "-o", "route", "show", "table", "all"))...)
	s.Netns = NonEmptyLines(out("ip", "netns", "list"))
	s.Links = LinkNames(out("ip", "-o", "link", "show"))
	m, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return s, fmt.Errorf("reading mounts: %w", err)
	}
	s.Mounts = MountLines(string(m))
	s.Processes, s.Parents = userProcesses()
	s.Devices = DeviceLines(out("dmsetup", "ls"), out("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"))
	s.Exports = ExportDirs(nfsserver.DefaultExport)
	return s, nil
}

// ExportDirs lists the entries of root (the servers' export root), as
// paths; none (or no root) gives none.
func ExportDirs(root string) []string {
	ents, _ := os.ReadDir(root)
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(root, e.Name()))
	}
	return out
}

// userProcesses lists "PID COMM" of processes with a command line (kernel
// threads have none), leaving out this agent and its ancestors, and maps
// each listed PID to its parent's.
func userProcesses() ([]string, map[string]string) {
	skip := map[int]bool{}
	for pid := os.Getpid(); pid > 1; {
		skip[pid] = true
		ppid, ok := parentOf(pid)
		if !ok {
			break
		}
		pid = ppid
	}
	skip[1] = true
	entries, _ := os.ReadDir("/proc")
	var out []string
	parents := map[string]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(cl) == 0 {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		out = append(out, e.Name()+" "+strings.TrimSpace(string(comm)))
		if ppid, ok := parentOf(pid); ok {
			parents[e.Name()] = strconv.Itoa(ppid)
		}
	}
	return out, parents
}

// parentOf reads the parent's PID from /proc/PID/stat.
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	ppid, err := proctrack.ParseParent(b)
	return ppid, err == nil
}
