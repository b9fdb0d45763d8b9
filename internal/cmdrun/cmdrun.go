package cmdrun

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Error is returned when a command cannot start or exits non-zero.
type Error struct {
	Args   []string
	Output string // combined stdout and stderr, trimmed
	Err    error
}

func (e *Error) Error() string {
	out := e.Output
	if len(out) > 2000 {
		out = out[:2000] + "…"
	}
	if out == "" {
		return fmt.Sprintf("running %s: %v", strings.Join(e.Args, " "), e.Err)
	}
	return fmt.Sprintf("running %s: %v: %s", strings.Join(e.Args, " "), e.Err, out)
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode returns the exit status of a command that ran and failed, or -1.
func (e *Error) ExitCode() int {
	if ee, ok := e.Err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// Command builds an *exec.Cmd with LC_ALL=C added to the environment and,
// on Linux, a parent-death signal (SIGKILL) so the command dies with
// nfslab. A caller that replaces SysProcAttr sets its own.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	tieToParent(cmd)
	return cmd
}

// Output runs the command and returns its stdout. On failure the error is an
// *Error carrying stdout and stderr.
func Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := Command(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		out := strings.TrimSpace(stdout.String() + "\n" + stderr.String())
		return stdout.Bytes(), &Error{Args: append([]string{name}, args...), Output: out, Err: err}
	}
	return stdout.Bytes(), nil
}

// Run runs the command, discarding stdout unless it fails.
func Run(ctx context.Context, name string, args ...string) error {
	_, err := Output(ctx, name, args...)
	return err
}
