package container

import (
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Fake is an in-memory Runtime for tests. It fails the way podman does:
// ErrNotFound (404) for an unknown container or image, ErrConflict (409)
// for a name in use or removing a running container without force,
// ErrNotModified (304) for stopping a stopped container. Tests drive the
// workload with AddLog, Exit and PutFile.
type Fake struct {
	mu      sync.Mutex
	now     func() time.Time
	seq     int
	ctrs    map[string]*fakeCtr // by ID
	images  map[string]string   // ref -> ID
	changed chan struct{}       // closed and replaced on every change
	// Calls records "op name" for each call, for order assertions.
	Calls []string
	// PullErr, if set, is what Pull returns (the default: no registry).
	PullErr error
	// StartErr, if set, is returned by the next Start.
	StartErr error
}

type fakeCtr struct {
	info  Info
	spec  Spec
	logs  []LogLine
	files map[string][]byte
}

// NewFake returns an empty fake whose clock is now (time.Now if nil).
func NewFake(now func() time.Time) *Fake {
	if now == nil {
		now = time.Now
	}
	return &Fake{now: now, ctrs: map[string]*fakeCtr{}, images: map[string]string{}, changed: make(chan struct{})}
}

var _ Runtime = (*Fake)(nil)

func (f *Fake) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Fake) call(op, name string) { f.Calls = append(f.Calls, op+" "+name) }

func (f *Fake) find(name string) (*fakeCtr, error) {
	if c, ok := f.ctrs[name]; ok {
		return c, nil
	}
	for _, c := range f.ctrs {
		if c.info.Name == name || (len(name) >= 12 && strings.HasPrefix(c.info.ID, name)) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no container with name or ID %q found: %w", name, ErrNotFound)
}

// AddImage makes ref present in local storage.
func (f *Fake) AddImage(ref string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	f.images[normalizeRef(ref)] = fmt.Sprintf("sha256:%064d", f.seq)
}

// AddLog appends lines to a container's log as if it printed them.
func (f *Fake) AddLog(name string, s Stream, lines ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.find(name)
	if err != nil {
		return err
	}
	for _, l := range lines {
		c.logs = append(c.logs, LogLine{Stream: s, Text: l})
	}
	f.notify()
	return nil
}

// PutFile places a file inside a container for CopyOut and ListDir.
func (f *Fake) PutFile(name, p string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.find(name)
	if err != nil {
		return err
	}
	c.files[p] = data
	return nil
}

// Exit ends a running container's process with code, as a crash would.
func (f *Fake) Exit(name string, code int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.find(name)
	if err != nil {
		return err
	}
	if c.info.State != StateRunning {
		return fmt.Errorf("container %s is %s, not running", name, c.info.State)
	}
	c.info.State, c.info.Exit, c.info.PID = StateExited, code, 0
	f.notify()
	return nil
}

// SpecOf returns the spec a container was created with.
func (f *Fake) SpecOf(name string) (Spec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.find(name)
	if err != nil {
		return Spec{}, err
	}
	return c.spec, nil
}

func (f *Fake) Create(_ context.Context, spec Spec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("create", spec.Name)
	if err := spec.Validate(); err != nil {
		return "", err
	}
	if _, ok := f.images[normalizeRef(spec.Image)]; !ok {
		return "", fmt.Errorf("%s: image not known: %w", spec.Image, ErrNotFound)
	}
	for _, c := range f.ctrs {
		if c.info.Name == spec.Name {
			return "", fmt.Errorf("creating container storage: the container name %q is already in use by %s: %w", spec.Name, c.info.ID, ErrConflict)
		}
	}
	f.seq++
	id := fmt.Sprintf("%064x", f.seq)
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	f.ctrs[id] = &fakeCtr{
		info: Info{ID: id, Name: spec.Name, Image: spec.Image, State: StateCreated, Labels: labels,
			Created: f.now().Add(time.Duration(f.seq)), Mounts: append([]Mount(nil), spec.Mounts...)},
		spec:  spec,
		files: map[string][]byte{},
	}
	f.notify()
	return id, nil
}

func (f *Fake) Start(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("start", name)
	c, err := f.find(name)
	if err != nil {
		return err
	}
	if f.StartErr != nil {
		err, f.StartErr = f.StartErr, nil
		return err
	}
	if c.info.State == StateRunning || c.info.State == StatePaused {
		return fmt.Errorf("container %s already running: %w", name, ErrNotModified)
	}
	f.seq++
	c.info.State, c.info.PID, c.info.Exit = StateRunning, 10000+f.seq, 0
	f.notify()
	return nil
}

func (f *Fake) Inspect(_ context.Context, name string) (Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.find(name)
	if err != nil {
		return Info{}, err
	}
	return c.info, nil
}

func (f *Fake) List(_ context.Context, labels map[string]string) ([]Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Info
next:
	for _, c := range f.ctrs {
		for k, v := range labels {
			if c.info.Labels[k] != v {
				continue next
			}
		}
		out = append(out, c.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

func (f *Fake) Logs(ctx context.Context, name string, opts LogOptions, fn func(LogLine)) error {
	next := 0
	first := true
	for {
		f.mu.Lock()
		c, err := f.find(name)
		if err != nil {
			f.mu.Unlock()
			return err
		}
		if first && opts.Tail > 0 && len(c.logs) > opts.Tail {
			next = len(c.logs) - opts.Tail
		}
		first = false
		lines := append([]LogLine(nil), c.logs[next:]...)
		next = len(c.logs)
		done := !opts.Follow || !c.info.Running()
		wait := f.changed
		f.mu.Unlock()
		for _, l := range lines {
			fn(l)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		}
	}
}

func (f *Fake) Wait(ctx context.Context, name string) (int, error) {
	for {
		f.mu.Lock()
		c, err := f.find(name)
		if err != nil {
			f.mu.Unlock()
			return -1, err
		}
		st, code, wait := c.info.State, c.info.Exit, f.changed
		f.mu.Unlock()
		if st == StateExited || st == StateStopped {
			return code, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-wait:
		}
	}
}

func (f *Fake) transition(op, name string, from, to State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call(op, name)
	c, err := f.find(name)
	if err != nil {
		return err
	}
	if c.info.State != from {
		return fmt.Errorf("%s %s: container state improper (%s): %w", op, name, c.info.State, ErrConflict)
	}
	c.info.State = to
	f.notify()
	return nil
}

func (f *Fake) Pause(_ context.Context, name string) error {
	return f.transition("pause", name, StateRunning, StatePaused)
}

func (f *Fake) Unpause(_ context.Context, name string) error {
	return f.transition("unpause", name, StatePaused, StateRunning)
}

func (f *Fake) Stop(_ context.Context, name string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("stop", name)
	c, err := f.find(name)
	if err != nil {
		return err
	}
	if !c.info.Running() {
		return fmt.Errorf("container %s is %s: %w", name, c.info.State, ErrNotModified)
	}
	// SIGTERM to a JVM: 128+15.
	c.info.State, c.info.Exit, c.info.PID = StateExited, 143, 0
	f.notify()
	return nil
}

func (f *Fake) Kill(_ context.Context, name string, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("kill", name)
	c, err := f.find(name)
	if err != nil {
		return err
	}
	if c.info.State != StateRunning {
		return fmt.Errorf("can only kill running containers. %s is in state %s: %w", name, c.info.State, ErrConflict)
	}
	c.info.State, c.info.Exit, c.info.PID = StateExited, 128+int(sig), 0
	f.notify()
	return nil
}

func (f *Fake) Restart(ctx context.Context, name string, timeout time.Duration) error {
	if err := f.Stop(ctx, name, timeout); err != nil && !isNotModified(err) {
		return err
	}
	return f.Start(ctx, name)
}

func (f *Fake) Remove(_ context.Context, name string, opts RemoveOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("remove", name)
	c, err := f.find(name)
	if err != nil {
		return err
	}
	if c.info.Running() && !opts.Force {
		return fmt.Errorf("cannot remove container %s as it is %s - running or paused containers cannot be removed without force: %w", name, c.info.State, ErrConflict)
	}
	delete(f.ctrs, c.info.ID)
	f.notify()
	return nil
}

func (f *Fake) CopyOut(_ context.Context, name, p string, w io.Writer) error {
	f.mu.Lock()
	c, err := f.find(name)
	var data []byte
	var ok bool
	if err == nil {
		data, ok = c.files[p]
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("copying %s from %s: no such file or directory: %w", p, name, ErrNotFound)
	}
	_, err = w.Write(data)
	return err
}

func (f *Fake) ListDir(_ context.Context, name, dir string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.find(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for p := range c.files {
		if path.Dir(p) == path.Clean(dir) {
			out = append(out, path.Base(p))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (f *Fake) ImageExists(_ context.Context, ref string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.images[normalizeRef(ref)]
	return ok, nil
}

func (f *Fake) Pull(_ context.Context, ref string, progress io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("pull", ref)
	if f.PullErr != nil {
		return f.PullErr
	}
	fmt.Fprintf(progress, "Trying to pull %s...\n", ref)
	f.seq++
	f.images[normalizeRef(ref)] = fmt.Sprintf("sha256:%064d", f.seq)
	return nil
}

func (f *Fake) Import(_ context.Context, tarball io.Reader, ref string) (string, error) {
	if _, err := io.Copy(io.Discard, tarball); err != nil {
		return "", fmt.Errorf("reading rootfs tarball: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("import", ref)
	f.seq++
	id := fmt.Sprintf("sha256:%064d", f.seq)
	f.images[normalizeRef(ref)] = id
	return id, nil
}

func (f *Fake) Version(context.Context) (string, error) { return "fake", nil }

// normalizeRef adds the implied tag so "x" and "x:latest" are one image.
func normalizeRef(ref string) string {
	last := ref[strings.LastIndex(ref, "/")+1:]
	if !strings.Contains(last, ":") && !strings.Contains(last, "@") {
		return ref + ":latest"
	}
	return ref
}
