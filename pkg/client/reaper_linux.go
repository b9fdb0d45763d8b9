package client

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// SpawnReaper starts this executable as `nfslab expire --id ID --created C
// --netns NS --at T` in its own session with stdio on /dev/null, so that
// it outlives the CLI and its terminal, and heals the fault at T. It lives
// no longer than its fault: see Reaper.
func SpawnReaper(id, netns string, created, at time.Time) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding nfslab executable: %w", err)
	}
	return spawnReaper(exe, id, netns, created, at)
}

func spawnReaper(exe, id, netns string, created, at time.Time) (int, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	cmd := exec.Command(exe, ExpireCommand, "--id", id, "--created", created.UTC().Format(time.RFC3339Nano),
		"--netns", netns, "--at", at.UTC().Format(time.RFC3339Nano))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", cmd.String(), err)
	}
	// It outlives us when we exit first (init adopts it); while we live,
	// reap it so that it does not linger as a zombie.
	go func() { _ = cmd.Wait() }()
	return cmd.Process.Pid, nil
}
