package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
)

// The tail of the guest console from CI's failed run (2026-12-02), with
// the head of an oops before it.
const ciPanic = "[  143.40] BUG: unable to handle page fault for address: ff2e775bc1e6ac0c\r\n" +
	"[  143.41] Oops: Oops: 0000 [#2] PREEMPT SMP NOPTI\r\n" +
	"[  143.418580] FS:  0000000000000000(0000) GS:ff2e775bfcb00000(0000) knlGS:0000000000000000\r\n" +
	"[  143.418662] CPU: 0 UID: 0 PID: 1317 Comm: podman Tainted: G      D            6.12.117+deb13-amd64 #1  Debian 6.12.117-1\r\n" +
	"[  143.418728] Kernel panic - not syncing: Fatal exception in interrupt\r\n" +
	"[  145.032899] Shutting down cpus with NMI\r\n"

func TestFindGuestPanic(t *testing.T) {
	p, ok := FindGuestPanic([]byte("nfslab-agent: start\r\n" + ciPanic))
	if !ok || p.Reason != "Fatal exception in interrupt" {
		t.Fatalf("panic %+v %v", p, ok)
	}
	if len(p.Excerpt) != 6 || !strings.HasPrefix(p.Excerpt[0], "[  143.40] BUG: unable to handle page fault") ||
		!strings.HasSuffix(p.Excerpt[4], "Fatal exception in interrupt") || !strings.HasSuffix(p.Excerpt[5], "Shutting down cpus with NMI") {
		t.Errorf("excerpt %q", p.Excerpt)
	}
	// softlockup_panic: the stack comes after the panic line, up to its
	// end marker.
	lockup := "[   60.1] watchdog: BUG: soft lockup - CPU#0 stuck for 67s! [podman:3883]\r\n" +
		"[   60.2] Kernel panic - not syncing: softlockup: hung tasks\r\n" +
		"[   60.2] CPU: 0 UID: 0 PID: 3883 Comm: podman Tainted: G             L     6.12.117+deb13-amd64 #1  Debian 6.12.117-1\r\n" +
		"[   60.2] Call Trace:\r\n" +
		"[   60.2]  watchdog_timer_fn+0x1f1/0x220\r\n" +
		"[   60.3] ---[ end Kernel panic - not syncing: softlockup: hung tasks ]---\r\n" +
		"after the end\r\n"
	p, ok = FindGuestPanic([]byte("nfslab-agent: start\r\n" + lockup))
	if !ok || p.Reason != "softlockup: hung tasks" || len(p.Excerpt) != 5 ||
		!strings.Contains(p.Excerpt[0], "soft lockup") || !strings.Contains(p.Excerpt[4], "watchdog_timer_fn") {
		t.Errorf("soft lockup panic %+v %v", p, ok)
	}
	for name, console := range map[string]string{
		"none":         "nfslab-agent: start\nnfslab-agent: step a: PASS\n",
		"init ended":   "[ 9.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n",
		"no root disk": "[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
	} {
		if p, ok := FindGuestPanic([]byte(console)); ok {
			t.Errorf("%s: found %+v", name, p)
		}
	}
	// A long oops keeps its head and the panic line; no oops keeps the
	// lines before the panic.
	long := "BUG: soft lockup\n" + strings.Repeat("trace line\n", 200) + panicMarker + "Fatal exception\n"
	if p, ok := FindGuestPanic([]byte(long)); !ok || len(p.Excerpt) != maxOopsLines || p.Excerpt[0] != "BUG: soft lockup" ||
		p.Excerpt[maxOopsLines-2] != "[…]" || p.Excerpt[maxOopsLines-1] != panicMarker+"Fatal exception" {
		t.Errorf("long oops: %d lines %q", len(p.Excerpt), p.Excerpt)
	}
	if p, ok := FindGuestPanic([]byte("a\nb\n" + panicMarker + "sysrq triggered crash\n")); !ok || len(p.Excerpt) != 3 {
		t.Errorf("no oops: %+v %v", p, ok)
	}
}

// fakeBoots plays boots of the lab VM: each call writes what its guest
// would (status, step logs, console) and returns what Session.Run would.
type fakeBoots struct {
	t     *testing.T
	jobs  [][]string
	plays []func(share, console string) (Status, error)
}

func (f *fakeBoots) boot(_ context.Context, in Input) (Result, error) {
	var names []string
	for _, s := range in.Job.Steps {
		names = append(names, s.Name)
	}
	f.jobs = append(f.jobs, names)
	share := ShareDir(in.WorkDir)
	res := Result{ShareDir: share, ConsoleLog: filepath.Join(in.WorkDir, "console.log"), Total: time.Minute, BootTime: 20 * time.Second}
	if _, err := os.Stat(filepath.Join(share, StatusFile)); err == nil {
		f.t.Errorf("boot %d: the earlier boot's status is still on the share", len(f.jobs))
	}
	if len(f.plays) == 0 {
		f.t.Fatalf("boot %d not expected", len(f.jobs))
	}
	play := f.plays[0]
	f.plays = f.plays[1:]
	st, err := play(share, res.ConsoleLog)
	res.Status = st
	if errors.Is(err, ErrGuestHung) { // as Session.Run reports it
		res.Hung = err.Error()
	}
	return res, err
}

func writeFiles(t *testing.T, files map[string]string) {
	t.Helper()
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func pass(name string) StepResult {
	return StepResult{Name: name, Verdict: Pass, Log: "logs/" + name + ".log", Duration: duration.Duration(time.Minute)}
}

var errUnfinished = errors.New("guest agent did not finish its job")

// panicked is a boot whose guest ran step "a", then panicked in "b".
func panicked(t *testing.T) func(share, console string) (Status, error) {
	return func(share, console string) (Status, error) {
		st := Status{Kernel: "6.12.117+deb13-amd64", Steps: []StepResult{pass("a")}}
		writeFiles(t, map[string]string{
			filepath.Join(share, StatusFile):   `{"steps":[]}`,
			filepath.Join(share, "logs/a.log"): "a's log",
			filepath.Join(share, "logs/b.log"): "b's log until the panic",
			console:                            "nfslab-agent: start\r\n" + ciPanic,
		})
		return st, errUnfinished
	}
}

func hostFor(t *testing.T, f *fakeBoots) (Host, string) {
	out := filepath.Join(t.TempDir(), "runs")
	probeDir := t.TempDir()
	return Host{Session: Session{Image: Image{Dir: t.TempDir()}}, Out: out, Boot: f.boot,
		BuildProbe: func(context.Context) (string, error) { return probeDir, nil }}, out
}

func threeSteps() Job {
	var j Job
	for _, n := range []string{"a", "b", "c"} {
		j.Steps = append(j.Steps, Step{Name: n, Argv: []string{"nfslab", n}, Timeout: duration.Duration(time.Minute)})
	}
	return j
}

// runBootedAgain runs threeSteps on f's boots, which must pass it in two
// boots ([a b c], then [b c]), and returns the summary and the one vm dir.
func runBootedAgain(t *testing.T, f *fakeBoots) (string, string) {
	t.Helper()
	h, out := hostFor(t, f)
	var w bytes.Buffer
	if err := h.Run(context.Background(), threeSteps(), &w); err != nil {
		t.Fatalf("run: %v\n%s", err, w.String())
	}
	if len(f.jobs) != 2 || strings.Join(f.jobs[1], ",") != "b,c" {
		t.Errorf("boots ran %q, want [a b c] then [b c]", f.jobs)
	}
	vmDirs, _ := filepath.Glob(filepath.Join(out, "vm-*"))
	if len(vmDirs) != 1 {
		t.Fatalf("vm dirs %v", vmDirs)
	}
	return w.String(), vmDirs[0]
}

// A guest kernel panic mid-job: one more boot runs the interrupted step
// and the rest; the summary shows the oops, the panic as the step's first
// attempt, and both consoles are brought back.
func TestHostBootsAgainAfterGuestPanic(t *testing.T) {
	f := &fakeBoots{t: t}
	f.plays = append(f.plays, panicked(t), func(share, console string) (Status, error) {
		if _, err := os.Stat(filepath.Join(filepath.Dir(console), panicConsole)); err != nil {
			t.Errorf("first console not kept: %v", err)
		}
		writeFiles(t, map[string]string{filepath.Join(share, "logs/b.log"): "b again", filepath.Join(share, "logs/c.log"): "c", console: "second boot"})
		return Status{Kernel: "6.12.117+deb13-amd64", Steps: []StepResult{pass("b"), pass("c")}, Complete: true}, nil
	})
	sum, vmDir := runBootedAgain(t, f)
	for p, want := range map[string]string{"console.log": "second boot", panicConsole: "nfslab-agent: start\r\n" + ciPanic,
		"logs/b.panic.log": "b's log until the panic", "logs/b.log": "b again", "logs/a.log": "a's log"} {
		if b, err := os.ReadFile(filepath.Join(vmDir, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	for _, want := range []string{
		"vm: the guest kernel panicked during step b (Fatal exception in interrupt); booted again for the 2 steps it had not finished; its console is " + filepath.Join(vmDir, panicConsole) + ":\n",
		"    [  143.40] BUG: unable to handle page fault",
		"total 2m0s",
		"PASS a (1m0s)\n",
		"PASS b (1m0s) on attempt 2\n",
		"    attempt 1: FAIL exit -1 after 0s the guest kernel panicked: Fatal exception in interrupt, log " + filepath.Join(vmDir, "logs/b.panic.log") + "\n",
		"PASS c (1m0s)\n",
	} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
}

// A second panic fails the job (no third boot), naming the step; a boot
// that fails without a panic is not booted again.
func TestHostBootsAgainOnlyOnce(t *testing.T) {
	f := &fakeBoots{t: t}
	f.plays = append(f.plays, panicked(t), func(share, console string) (Status, error) {
		writeFiles(t, map[string]string{console: ciPanic})
		return Status{}, errUnfinished
	})
	h, _ := hostFor(t, f)
	var w bytes.Buffer
	if err := h.Run(context.Background(), threeSteps(), &w); !errors.Is(err, errUnfinished) {
		t.Errorf("run: %v, want the second boot's error", err)
	}
	if len(f.jobs) != 2 || !strings.Contains(w.String(), "FAIL b (0s) exit -1 the guest kernel panicked: Fatal exception in interrupt\n") ||
		!strings.Contains(w.String(), "vm: the guest kernel panicked again (Fatal exception in interrupt); no third boot") {
		t.Errorf("boots %q, summary:\n%s", f.jobs, w.String())
	}

	f = &fakeBoots{t: t}
	f.plays = append(f.plays, func(share, console string) (Status, error) {
		writeFiles(t, map[string]string{console: "[ 9.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n"})
		return Status{Steps: []StepResult{pass("a")}}, errUnfinished
	})
	h, _ = hostFor(t, f)
	if err := h.Run(context.Background(), threeSteps(), &w); !errors.Is(err, errUnfinished) || len(f.jobs) != 1 {
		t.Errorf("init's end: %v after %d boots", err, len(f.jobs))
	}
}

// A guest that stops answering (its kernel locked up: CI, 2026-12-03) is
// ended by the host and gets the same one more boot as a panic, with the
// console's last lines shown and kept as console.hung.log.
func TestHostBootsAgainAfterGuestHung(t *testing.T) {
	const lockup = "[  816.721174] watchdog: BUG: soft lockup - CPU#0 stuck for 45s! [podman:3883]\r\n"
	f := &fakeBoots{t: t}
	f.plays = append(f.plays, func(share, console string) (Status, error) {
		writeFiles(t, map[string]string{
			filepath.Join(share, "logs/a.log"): "a's log",
			filepath.Join(share, "logs/b.log"): "b's log until the hang",
			console:                            "nfslab-agent: start\r\n" + strings.Repeat("early line\r\n", 30) + lockup,
		})
		return Status{Steps: []StepResult{pass("a")}}, fmt.Errorf("%w: no heartbeat from the agent for 4m0s (heartbeat)", ErrGuestHung)
	}, func(share, console string) (Status, error) {
		writeFiles(t, map[string]string{filepath.Join(share, "logs/b.log"): "b again", filepath.Join(share, "logs/c.log"): "c", console: "second boot"})
		return Status{Steps: []StepResult{pass("b"), pass("c")}, Complete: true}, nil
	})
	sum, vmDir := runBootedAgain(t, f)
	for p, want := range map[string]string{"console.log": "second boot", "logs/b.hung.log": "b's log until the hang", "logs/b.log": "b again"} {
		if b, err := os.ReadFile(filepath.Join(vmDir, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(vmDir, hungConsole)); err != nil || !strings.HasSuffix(string(b), lockup) {
		t.Errorf("%s: %q %v", hungConsole, b, err)
	}
	for _, want := range []string{
		"vm: the guest stopped answering during step b (no heartbeat from the agent for 4m0s (heartbeat)); booted again for the 2 steps it had not finished; its console is " + filepath.Join(vmDir, hungConsole) + ":\n",
		"    [  816.721174] watchdog: BUG: soft lockup - CPU#0 stuck for 45s! [podman:3883]\n",
		"PASS b (1m0s) on attempt 2\n",
		"    attempt 1: FAIL exit -1 after 0s the guest stopped answering: no heartbeat from the agent for 4m0s (heartbeat), log " + filepath.Join(vmDir, "logs/b.hung.log") + "\n",
	} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	// The excerpt is the console's last lines, not all of it.
	if n := strings.Count(sum, "early line"); n != hungExcerpt-1 {
		t.Errorf("excerpt shows %d early lines, want %d:\n%s", n, hungExcerpt-1, sum)
	}
}
