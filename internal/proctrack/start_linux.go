package proctrack

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
)

// Start starts cmd so that it dies with this process, and records it in s
// (nil: not recorded). The child gets SIGKILL when the thread that forked
// it exits (Pdeathsig) and runs in its own process group (so heal can end
// its descendants too, and a terminal's Ctrl-C reaches nfslab, which then
// stops it in order).
//
// Pdeathsig is tied to the forking OS thread, not to the process: the Go
// runtime ends a thread when a goroutine locked to it exits (netns code
// does that on purpose), which would kill the child early. So Start locks
// the calling goroutine to its thread, and release unlocks it: call
// release from the same goroutine once cmd.Wait has returned. release
// also removes the record.
func Start(s *Store, cmd *exec.Cmd, name string) (release func(), err error) {
	return StartRecord(s, cmd, Record{Name: name})
}

// StartRecord is Start with more of the record given: r's Name and
// Mounts (its kind, owner, process and command line are filled in).
func StartRecord(s *Store, cmd *exec.Cmd, r Record) (release func(), err error) {
	name := r.Name
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr.Setpgid = true
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	remove := func() error { return nil }
	if s != nil {
		id, err := Of(s.procs(), cmd.Process.Pid)
		if err == nil {
			r.Kind, r.Proc, r.Args = KindProcess, id, cmd.Args
			remove, err = s.Put(r)
		}
		if err != nil {
			// Not recorded means heal could not find it: do not run it.
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("recording %s: %w", name, err)
		}
	}
	return func() {
		_ = remove()
		runtime.UnlockOSThread()
	}, nil
}
