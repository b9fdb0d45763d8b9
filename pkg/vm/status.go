package vm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"regexp"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
)

// Files on the share that host and guest agree on.
const (
	JobFile    = "job.json"
	StatusFile = "status.json"
	// StatusMarker prefixes the status line the agent also prints on the
	// serial console, so the result survives a share that failed to sync.
	StatusMarker = "NFSLAB-VM-STATUS "
)

// Job is what the host asks the guest agent to do.
type Job struct {
	Steps []Step `json:"steps"`
}

// Step is one command the agent runs, as an argument list (never a shell
// string). Argv[0] "nfslab" means the nfslab binary on the share.
type Step struct {
	Name    string            `json:"name"`
	Argv    []string          `json:"argv"`
	Timeout duration.Duration `json:"timeout"`
	// Env is added to the guest's environment (KEY=VALUE).
	Env []string `json:"env,omitempty"`
	// Retries is how many more times a step that failed with exit status 1
	// and left nothing behind is run. Under TCG the guest's JVM crashes in
	// JIT-compiled code about once in twenty starts, before any fault; one
	// retry keeps that emulation flake from deciding a verdict, and every
	// attempt stays in the status and its log.
	Retries int `json:"retries,omitempty"`
	// Crash makes the step a crash trial (see Crash); nil runs it plainly.
	Crash *Crash `json:"crash,omitempty"`
}

// Crash makes a step a crash trial of nfslab's "nothing left behind"
// promise: the agent kills the step's command with SIGKILL (its main
// process only, as a crash would: its children must end on their own)
// After the first output line that matches AfterLine (or after the start
// when AfterLine is empty), then runs Heal. The step passes when the kill
// happened, Heal exited 0 and the leftover check found nothing.
type Crash struct {
	AfterLine string            `json:"after_line,omitempty"`
	After     duration.Duration `json:"after"`
	Heal      []string          `json:"heal"`
}

// Validate rejects steps the agent could not run.
func (j Job) Validate() error {
	if len(j.Steps) == 0 {
		return fmt.Errorf("%w: job has no steps", ErrInvalid)
	}
	seen := map[string]bool{}
	for i, s := range j.Steps {
		if s.Name == "" || strings.ContainsAny(s.Name, "/ \t\n") {
			return fmt.Errorf("%w: step %d name %q", ErrInvalid, i, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("%w: step name %q used twice", ErrInvalid, s.Name)
		}
		seen[s.Name] = true
		if len(s.Argv) == 0 {
			return fmt.Errorf("%w: step %q has no command", ErrInvalid, s.Name)
		}
		for _, e := range s.Env {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				return fmt.Errorf("%w: step %q env entry %q is not KEY=VALUE", ErrInvalid, s.Name, e)
			}
		}
		if s.Timeout.D() <= 0 {
			return fmt.Errorf("%w: step %q timeout %s must be positive", ErrInvalid, s.Name, s.Timeout.D())
		}
		if s.Retries < 0 || s.Retries > 3 {
			return fmt.Errorf("%w: step %q retries %d out of range (0-3)", ErrInvalid, s.Name, s.Retries)
		}
		if c := s.Crash; c != nil {
			if len(c.Heal) == 0 {
				return fmt.Errorf("%w: crash step %q has no heal command", ErrInvalid, s.Name)
			}
			if c.After.D() < 0 || c.After.D() >= s.Timeout.D() {
				return fmt.Errorf("%w: crash step %q kill time %s is outside its timeout %s", ErrInvalid, s.Name, c.After.D(), s.Timeout.D())
			}
			if _, err := regexp.Compile(c.AfterLine); err != nil {
				return fmt.Errorf("%w: crash step %q after_line %q: %v", ErrInvalid, s.Name, c.AfterLine, err)
			}
		}
	}
	return nil
}

// Verdicts of a step.
const (
	Pass = "PASS"
	Fail = "FAIL"
)

// StepResult is the agent's account of one step.
type StepResult struct {
	Name     string            `json:"name"`
	Argv     []string          `json:"argv"`
	ExitCode int               `json:"exit_code"`
	Error    string            `json:"error,omitempty"`
	Started  time.Time         `json:"started"`
	Duration duration.Duration `json:"duration"`
	// Leftovers are kernel objects and processes that appeared during the
	// step and were still there after it: nothing may be left behind.
	Leftovers []string `json:"leftovers,omitempty"`
	Verdict   string   `json:"verdict"`
	Log       string   `json:"log"` // path on the share
	// Earlier are the failed attempts before this one (see Step.Retries).
	Earlier []StepResult `json:"earlier,omitempty"`
	// KilledAfter is how long the command of a crash trial ran before the
	// agent killed it; 0 when it was not killed.
	KilledAfter duration.Duration `json:"killed_after,omitempty"`
	// HealExit is the exit status of a crash trial's heal command.
	HealExit int `json:"heal_exit,omitempty"`
}

// retryable reports whether a failed attempt may be run again: it failed
// with exit status 1 (an expectation or the run failed), did not time out
// and left nothing behind. Bad input (2) and leftovers are never retried.
func (r StepResult) retryable() bool {
	return r.Verdict == Fail && r.ExitCode == 1 && r.Error == "" && len(r.Leftovers) == 0
}

// Status is the agent's final report.
type Status struct {
	Kernel   string       `json:"kernel"`
	Steps    []StepResult `json:"steps"`
	Complete bool         `json:"complete"`
}

// Failed lists the steps that did not pass.
func (s Status) Failed() []string {
	var out []string
	for _, r := range s.Steps {
		if r.Verdict != Pass {
			out = append(out, r.Name)
		}
	}
	return out
}

// ErrNoStatus means the guest never reported.
var ErrNoStatus = errors.New("guest reported no status")

// ParseStatus reads status.json's content.
func ParseStatus(b []byte) (Status, error) {
	var st Status
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return Status{}, fmt.Errorf("decoding guest status: %w", err)
	}
	for i, r := range st.Steps {
		if r.Verdict != Pass && r.Verdict != Fail {
			return Status{}, fmt.Errorf("decoding guest status: step %d (%s) has verdict %q", i, r.Name, r.Verdict)
		}
	}
	return st, nil
}

// StatusFromConsole finds the last status line the agent printed on the
// serial console. Console lines may carry \r and kernel messages may be
// interleaved before the marker.
func StatusFromConsole(log []byte) (Status, error) {
	var last string
	for line := range consoleLines(log) {
		if i := strings.Index(line, StatusMarker); i >= 0 {
			last = line[i+len(StatusMarker):]
		}
	}
	if last == "" {
		return Status{}, ErrNoStatus
	}
	return ParseStatus([]byte(last))
}

// consoleLines yields the lines of a serial console log without the \r
// qemu's console may end them with; a line may be long (the status line).
func consoleLines(log []byte) iter.Seq[string] {
	return func(yield func(string) bool) {
		sc := bufio.NewScanner(bytes.NewReader(log))
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			if !yield(strings.TrimRight(sc.Text(), "\r")) {
				return
			}
		}
	}
}
