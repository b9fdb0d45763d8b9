package vm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// panicConsole and hungConsole are the console log of a boot whose guest
// kernel panicked or that the host ended as hung, kept next to the next
// boot's console.log.
const (
	panicConsole = "console.panic.log"
	hungConsole  = "console.hung.log"
)

// deadConsoles are the names a dead boot's console is kept under.
var deadConsoles = []string{panicConsole, hungConsole}

// console is the name p's boot's console is kept under.
func (p GuestPanic) console() string {
	if p.Hung {
		return hungConsole
	}
	return panicConsole
}

// guestDeath is a boot that ended in a guest kernel panic, or that the
// host ended because the guest stopped answering.
type guestDeath struct {
	Panic GuestPanic
	// Step is the step the guest was running: the first one the agent
	// had not reported.
	Step string
	// Rest is how many steps the next boot ran.
	Rest int
	// Again is the next boot's panic, if it had one (the job fails).
	Again *GuestPanic
}

// hungExcerpt is how many of a hung guest's last console lines are shown:
// what the kernel said while it stalled (soft lockups, RCU stalls).
const hungExcerpt = 20

// readGuestDeath looks for a guest kernel panic on res's console log, and
// otherwise reports the host's verdict that the guest hung, with the
// console's last lines.
func readGuestDeath(res Result) (GuestPanic, bool) {
	var b []byte
	if res.ConsoleLog != "" {
		b, _ = os.ReadFile(res.ConsoleLog)
	}
	if p, ok := FindGuestPanic(b); ok {
		return p, true
	}
	if res.Hung == "" {
		return GuestPanic{}, false
	}
	var lines []string
	for l := range consoleLines(b) {
		lines = append(lines, l)
	}
	return GuestPanic{Hung: true, Reason: strings.TrimPrefix(res.Hung, ErrGuestHung.Error()+": "),
		Excerpt: lines[max(len(lines)-hungExcerpt, 0):]}, true
}

// bootAgain boots once more, after a boot whose guest kernel panicked or
// hung, for the steps that boot did not finish. Either is the guest
// kernel's failure, not a verdict on a step: under TCG the Debian guest
// kernel died once in interrupt context while a podman step ran (CI,
// 2026-12-02) and locked up once in podman (CI, 2026-12-03), and the whole
// job failed for each. The interrupted step is run again from a fresh
// overlay with the death as its earlier attempt (its log kept as
// NAME.panic.log or NAME.hung.log), so the summary and status show both;
// a second death fails the job. The merged result carries the finished
// steps of both boots and the second boot's error.
func bootAgain(ctx context.Context, boot func(context.Context, Input) (Result, error), in Input, first Result, p GuestPanic, log *slog.Logger) (*guestDeath, Result, error) {
	done := first.Status.Steps
	if len(done) >= len(in.Job.Steps) {
		return nil, first, fmt.Errorf("%s after the last step: %s", p.What(), p.Reason)
	}
	rest := in.Job.Steps[len(done):]
	interrupted := rest[0]
	share := ShareDir(in.WorkDir)
	earlier := StepResult{Name: interrupted.Name, Argv: interrupted.Argv, ExitCode: -1, Verdict: Fail,
		Error: p.What() + ": " + p.Reason}
	kept := filepath.Join("logs", interrupted.Name+"."+p.kind()+".log")
	if os.Rename(filepath.Join(share, "logs", interrupted.Name+".log"), filepath.Join(share, kept)) == nil {
		earlier.Log = kept
	}
	// A second boot that reports nothing must not be read as the first.
	if err := os.Remove(filepath.Join(share, StatusFile)); err != nil && !os.IsNotExist(err) {
		return nil, first, fmt.Errorf("removing the dead boot's status: %w", err)
	}
	if err := os.Rename(first.ConsoleLog, filepath.Join(filepath.Dir(first.ConsoleLog), p.console())); err != nil {
		return nil, first, fmt.Errorf("keeping the dead boot's console: %w", err)
	}
	log.Warn("vm: "+p.What()+"; booting again for the steps it had not finished",
		"step", interrupted.Name, "reason", p.Reason, "steps", len(rest))
	again := in
	again.Job = Job{Steps: rest}
	res, err := boot(ctx, again)
	res.BootTime, res.Total = first.BootTime, first.Total+res.Total
	st := res.Status
	if len(st.Steps) > 0 && st.Steps[0].Name == interrupted.Name {
		st.Steps[0].Earlier = append([]StepResult{earlier}, st.Steps[0].Earlier...)
	} else {
		st.Steps = append([]StepResult{earlier}, st.Steps...)
	}
	if st.Kernel == "" {
		st.Kernel = first.Status.Kernel
	}
	st.Steps = append(append([]StepResult(nil), done...), st.Steps...)
	res.Status = st
	d := &guestDeath{Panic: p, Step: interrupted.Name, Rest: len(rest)}
	if p2, ok := readGuestDeath(res); ok {
		d.Again = &p2
	}
	return d, res, err
}

// write tells the reader of the summary what the guest kernel printed.
func (d *guestDeath) write(w io.Writer, vmDir string) {
	fmt.Fprintf(w, "vm: %s during step %s (%s); booted again for the %d steps it had not finished; its console is %s:\n",
		d.Panic.What(), d.Step, d.Panic.Reason, d.Rest, filepath.Join(vmDir, d.Panic.console()))
	for _, l := range d.Panic.Excerpt {
		fmt.Fprintf(w, "    %s\n", l)
	}
	if d.Again != nil {
		fmt.Fprintf(w, "vm: %s again (%s); no third boot; its console is %s:\n",
			d.Again.What(), d.Again.Reason, filepath.Join(vmDir, "console.log"))
		for _, l := range d.Again.Excerpt {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}
