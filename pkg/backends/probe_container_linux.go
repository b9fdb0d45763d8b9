package backends

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/probe"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// containerProbe runs each JVM of the probe in a podman container of
// nfslab's own probe image (container.ProbeSpec): the data directory
// bind-mounted, the log streamed through the bindings, the exit status
// from podman's wait, the hs_err report copied out of the container into
// the log directory. A container is removed once its JVM has ended, or
// when the run that started it is cancelled (restart, rollback).
type containerProbe struct {
	rt    container.Runtime
	runID string
	// image makes the probe image present and returns its reference and
	// the java to run in it (ownProbeImage in production).
	image func(ctx context.Context) (ref, java string, err error)

	mu        sync.Mutex
	ref, java string
	seq       int
	current   string // the container whose JVM runs now
}

// UseContainer makes p run its JVMs in podman containers of rt labelled
// with runID (target.probe.container). Call it before Start.
func (p *ProbeTarget) UseContainer(rt container.Runtime, runID string) {
	classDir := p.ClassDir
	p.proc = &containerProbe{rt: rt, runID: runID, image: func(ctx context.Context) (string, string, error) {
		return ownProbeImage(ctx, rt, classDir)
	}}
}

// ownProbeImage builds (once per content: the tag is its hash) the probe
// image from this machine's JRE and the compiled probe.
func ownProbeImage(ctx context.Context, rt container.Runtime, classDir string) (string, string, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return "", "", fmt.Errorf("building the probe image: %w", err)
	}
	spec, inImage, err := container.ProbeRootfs(java, classDir)
	if err != nil {
		return "", "", err
	}
	ref, err := container.EnsureOwnImage(ctx, rt, container.OwnProbeImage, spec)
	return ref, inImage, err
}

// probeContainerName is the n-th probe container of a run: short enough
// for podman's 63 characters whatever the run directory is called.
func probeContainerName(runID string, n int) string {
	h := sha1.Sum([]byte(runID))
	return fmt.Sprintf("nfslab-probe-%s-%d", hex.EncodeToString(h[:4]), n)
}

// prepare makes the probe image present, once per run.
func (c *containerProbe) prepare(ctx context.Context) error {
	c.mu.Lock()
	done := c.ref != ""
	c.mu.Unlock()
	if done {
		return nil
	}
	ref, java, err := c.image(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.ref, c.java = ref, java
	c.mu.Unlock()
	return nil
}

func (c *containerProbe) run(ctx context.Context, cfg probe.Config, onLine func(probe.Line)) (probe.Result, error) {
	if err := cfg.Validate(); err != nil {
		return probe.Result{}, err
	}
	c.mu.Lock()
	ref, java := c.ref, c.java
	c.seq++
	name := probeContainerName(c.runID, c.seq)
	c.mu.Unlock()
	if ref == "" {
		return probe.Result{}, errors.New("the probe image was not prepared")
	}
	in := cfg
	in.Dir, in.Java, in.ErrorDir, in.Track = container.ProbeDataDir, java, "", nil
	spec := container.ProbeSpec(name, ref, c.runID, cfg.Dir, probe.Command(container.ProbeClassDir, container.ProbeWorkDir, in))
	start := time.Now()
	if _, err := container.Run(ctx, c.rt, spec); err != nil {
		return probe.Result{}, fmt.Errorf("starting the probe container %s: %w", name, err)
	}
	c.setCurrent(name)
	// Removal must not depend on ctx: a cancelled run leaves nothing.
	bg := context.WithoutCancel(ctx)
	defer func() {
		c.setCurrent("")
		_ = c.rt.Remove(bg, name, container.RemoveOptions{Force: true, Volumes: true})
	}()
	res := probe.Result{ErrorDir: cfg.ErrorDir}
	logCtx, stopLogs := context.WithCancel(bg)
	defer stopLogs()
	logsDone := make(chan error, 1)
	go func() {
		logsDone <- c.rt.Logs(logCtx, name, container.LogOptions{Follow: true}, func(l container.LogLine) {
			pl := probe.Line{Stream: string(l.Stream), Text: l.Text, Time: time.Now()}
			res.Keep(pl)
			if onLine != nil {
				onLine(pl)
			}
		})
	}()
	code, werr := c.rt.Wait(ctx, name)
	res.Elapsed = time.Since(start)
	if werr != nil {
		stopLogs()
		<-logsDone
		if ctx.Err() != nil {
			return res, fmt.Errorf("running probe: %w", ctx.Err())
		}
		return res, fmt.Errorf("waiting for the probe container %s: %w", name, werr)
	}
	// The stream ends with the container; its last lines (the fatal
	// error banner) may still be on their way.
	select {
	case <-logsDone:
	case <-time.After(10 * time.Second):
		stopLogs()
		<-logsDone
	}
	res.ExitCode = code
	if code > 128 && code < 128+65 {
		res.Signal = syscall.Signal(code - 128) // catatonit's 128+N for a JVM killed by signal N
	}
	if code != 0 && cfg.ErrorDir != "" {
		paths, err := container.CopyHsErr(bg, c.rt, name, cfg.ErrorDir, container.ProbeWorkDir)
		switch {
		case err == nil:
			res.HsErr = paths[0]
		case !errors.Is(err, container.ErrNotFound):
			return res, fmt.Errorf("copying the hs_err report out of %s: %w", name, err)
		}
	}
	return res, nil
}

func (c *containerProbe) setCurrent(name string) {
	c.mu.Lock()
	c.current = name
	c.mu.Unlock()
}

// control acts on the running container as the workshop did on Zeebe's:
// pause and unpause through the cgroup freezer (podman pause), stop and
// kill as signals to the JVM through catatonit (podman kill).
func (c *containerProbe) control(ctx context.Context, action string, _ int) error {
	c.mu.Lock()
	name := c.current
	c.mu.Unlock()
	if name == "" {
		return errors.New("no probe container is running")
	}
	var err error
	switch action {
	case scenario.ActionPause:
		err = c.rt.Pause(ctx, name)
	case scenario.ActionUnpause:
		err = c.rt.Unpause(ctx, name)
	case scenario.ActionStop:
		err = c.rt.Kill(ctx, name, syscall.SIGTERM)
	case scenario.ActionKill:
		err = c.rt.Kill(ctx, name, syscall.SIGKILL)
	default:
		return fmt.Errorf("%s: %w", action, engine.ErrUnsupported)
	}
	if err != nil {
		return fmt.Errorf("%s of probe container %s: %w", action, name, err)
	}
	return nil
}

// close removes every probe container of the run, by label, whatever a
// failed removal left.
func (c *containerProbe) close(ctx context.Context) error {
	if _, err := container.Cleanup(ctx, c.rt, container.CleanupOptions{RunID: c.runID, Role: container.RoleProbe, StopTimeout: time.Second}); err != nil {
		return fmt.Errorf("removing the probe containers of run %s: %w", c.runID, err)
	}
	return nil
}
