package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/duration"
)

// HealTimeout bounds a crash trial's heal command: heal must end a fault
// and unmount a hung NFS mount with its own deadlines, well within this.
const HealTimeout = 3 * time.Minute

// crashTrial kills a step's command at its crash point (see Crash).
type crashTrial struct {
	c       Crash
	re      *regexp.Regexp
	matched chan struct{}
	once    sync.Once
	mu      sync.Mutex
	killed  time.Duration
}

func newCrashTrial(c Crash) *crashTrial {
	t := &crashTrial{c: c, matched: make(chan struct{})}
	if c.AfterLine != "" {
		t.re = regexp.MustCompile(c.AfterLine) // Job.Validate compiled it
	} else {
		close(t.matched)
	}
	return t
}

// line is the step's output hook: the first match arms the kill.
func (t *crashTrial) line(l string) {
	if t.re != nil && t.re.MatchString(l) {
		t.once.Do(func() { close(t.matched) })
	}
}

// kill sends SIGKILL to p (not its group) After the crash point, unless
// ctx ends first (the command finished or timed out). os.Process.Signal
// refuses a process already waited for, so a reused PID is never hit.
func (t *crashTrial) kill(ctx context.Context, clk clock.Clock, p *os.Process, started time.Time) {
	select {
	case <-t.matched:
	case <-ctx.Done():
		return
	}
	select {
	case <-clk.After(t.c.After.D()):
	case <-ctx.Done():
		return
	}
	if err := p.Signal(os.Kill); err != nil {
		return
	}
	t.mu.Lock()
	t.killed = max(clk.Now().Sub(started), time.Nanosecond)
	t.mu.Unlock()
}

func (t *crashTrial) killedAfter() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.killed
}

// finishCrash records the kill and runs the trial's heal command, its
// output appended to the step's log.
func (a Agent) finishCrash(ctx context.Context, s Step, t *crashTrial, log io.Writer, lw *lineWriter, r *StepResult) {
	r.KilledAfter = duration.Duration(t.killedAfter())
	if r.KilledAfter == 0 {
		r.Error = strings.TrimSpace(r.Error + fmt.Sprintf("; the command ended (exit %d) before its crash point", r.ExitCode))
		r.Error = strings.TrimPrefix(r.Error, "; ")
	}
	heal := append([]string(nil), s.Crash.Heal...)
	if heal[0] == "nfslab" {
		heal[0] = filepath.Join(a.Share, "bin", "nfslab")
	}
	hctx, cancel := context.WithTimeout(ctx, HealTimeout)
	defer cancel()
	fmt.Fprintf(io.MultiWriter(log, a.Console), "[%s] crash trial: killed after %s; running %s\n",
		s.Name, r.KilledAfter.D().Round(time.Millisecond), strings.Join(s.Crash.Heal, " "))
	cmd := cmdrun.Command(hctx, heal[0], heal[1:]...)
	cmd.Dir = a.Share
	cmd.Stdout = io.MultiWriter(log, lw)
	cmd.Stderr = cmd.Stdout
	err := cmd.Run()
	lw.Flush()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.HealExit = ee.ExitCode()
	default:
		r.HealExit = -1
		r.Error = strings.TrimPrefix(r.Error+"; heal: "+err.Error(), "; ")
	}
}
