package podman

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/images"
	"github.com/containers/podman/v5/pkg/bindings/system"
	"github.com/containers/podman/v5/pkg/errorhandling"
	"github.com/containers/podman/v5/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"
	nettypes "go.podman.io/common/libnetwork/types"

	"github.com/nfslab/nfslab/pkg/container"
)

// DefaultSocket is where a root podman service listens by default.
const DefaultSocket = "unix:///run/podman/podman.sock"

// Client implements container.Runtime with the podman v5 REST bindings. It works
// against podman 4.3 and 5 services: it uses only endpoints both serve,
// sends short rlimit names, and asks for the k8s-file log driver so that
// logs can be followed without journald.
type Client struct {
	uri  string
	conn context.Context // carries the bindings' connection values only
}

var _ container.Runtime = (*Client)(nil)

// SocketURI resolves the service address: uri if set, else
// $CONTAINER_HOST, else DefaultSocket.
func SocketURI(uri string) string {
	if uri != "" {
		return uri
	}
	if env := os.Getenv("CONTAINER_HOST"); env != "" {
		return env
	}
	return DefaultSocket
}

// HowToStartService says how to get a service at uri, for error messages.
func HowToStartService(uri string) string {
	return fmt.Sprintf("start one as root with `podman --runtime runc system service --time=0 %s &` "+
		"(or `systemctl start podman.socket` for %s), set $CONTAINER_HOST, "+
		"or pass --start-service to have nfslab start one for the run and stop it after", uri, strings.TrimPrefix(DefaultSocket, "unix://"))
}

// Connect connects to the podman service at uri (see SocketURI) and checks
// that it answers. ctx bounds only the connection attempt.
func Connect(ctx context.Context, uri string) (*Client, error) {
	uri = SocketURI(uri)
	if strings.HasPrefix(uri, "unix://") {
		if _, err := os.Stat(strings.TrimPrefix(uri, "unix://")); err != nil {
			return nil, fmt.Errorf("%w at %s (%v): %s", container.ErrNoService, uri, err, HowToStartService(uri))
		}
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := bindings.NewConnection(pingCtx, uri)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v: %s", container.ErrNoService, uri, err, HowToStartService(uri))
	}
	return &Client{uri: uri, conn: conn}, nil
}

// At returns a connector to the podman service at uri (DefaultSocket when
// empty, whatever $CONTAINER_HOST says), as cleanup.Options.Podman takes it.
func At(uri string) func(context.Context) (container.Runtime, error) {
	if uri == "" {
		uri = DefaultSocket
	}
	return func(ctx context.Context) (container.Runtime, error) { return Connect(ctx, uri) }
}

// URI is the service address in use.
func (p *Client) URI() string { return p.uri }

// ctx joins the caller's cancellation with the connection's values: the
// bindings find their client through ctx.Value.
func (p *Client) ctx(ctx context.Context) context.Context { return valuesCtx{ctx, p.conn} }

type valuesCtx struct {
	context.Context
	values context.Context
}

func (c valuesCtx) Value(key any) any {
	if v := c.values.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// mapErr turns the bindings' errors into nfslab's sentinel errors.
func mapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	code := 0
	msg := err.Error()
	var em *errorhandling.ErrorModel
	var emv errorhandling.ErrorModel
	var pc *errorhandling.PodConflictErrorModel
	switch {
	case errors.As(err, &em):
		code, msg = em.ResponseCode, em.Message
	case errors.As(err, &emv):
		code, msg = emv.ResponseCode, emv.Message
	case errors.As(err, &pc):
		code = pc.Code()
	}
	var ce bindings.ConnectError
	switch {
	case code == 404 || strings.Contains(msg, "no such container") || strings.Contains(msg, "no container with"):
		return fmt.Errorf("%s: %s: %w", what, msg, container.ErrNotFound)
	case code == 409 || strings.Contains(msg, "already in use") || strings.Contains(msg, "state improper") ||
		strings.Contains(msg, "is not paused") || strings.Contains(msg, "is not running"):
		return fmt.Errorf("%s: %s: %w", what, msg, container.ErrConflict)
	case code == 304:
		return fmt.Errorf("%s: %w", what, container.ErrNotModified)
	case errors.As(err, &ce):
		return fmt.Errorf("%s: %w: %v", what, container.ErrNoService, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (p *Client) Create(ctx context.Context, s container.Spec) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	sg := specgen.NewSpecGenerator(s.Image, false)
	sg.Name = s.Name
	sg.Labels = s.Labels
	sg.Env = s.Env
	sg.Command = s.Command
	sg.WorkDir = s.WorkDir
	sg.Terminal = ptr(false)
	// k8s-file works everywhere; journald (Debian's default) needs a
	// running journal and loses lines when it is rate-limited.
	sg.LogConfiguration = &specgen.LogConfig{Driver: "k8s-file"}
	if s.Privileged {
		sg.Privileged = ptr(true)
	}
	if s.Init {
		sg.Init = ptr(true)
	}
	for _, m := range s.Mounts {
		opt := "rw"
		if m.ReadOnly {
			opt = "ro"
		}
		sg.Mounts = append(sg.Mounts, spec.Mount{Type: "bind", Source: m.Source, Destination: m.Target, Options: []string{"rbind", opt}})
	}
	for _, pt := range s.Ports {
		proto := pt.Proto
		if proto == "" {
			proto = "tcp"
		}
		sg.PortMappings = append(sg.PortMappings, nettypes.PortMapping{HostIP: pt.HostIP, HostPort: pt.HostPort, ContainerPort: pt.ContainerPort, Protocol: proto})
	}
	switch s.Network {
	case container.NetworkNone:
		sg.NetNS = specgen.Namespace{NSMode: specgen.NoNetwork}
	case container.NetworkHost:
		sg.NetNS = specgen.Namespace{NSMode: specgen.Host}
	case container.NetworkBridge:
		sg.NetNS = specgen.Namespace{NSMode: specgen.Bridge}
	}
	rl := s.Rlimits
	if len(rl) == 0 {
		rl = container.DefaultRlimits()
	}
	for _, r := range rl {
		// Short names: podman 4.3 rejects "RLIMIT_NOFILE".
		sg.Rlimits = append(sg.Rlimits, spec.POSIXRlimit{Type: r.Name, Soft: r.Soft, Hard: r.Hard})
	}
	resp, err := containers.CreateWithSpec(p.ctx(ctx), sg, nil)
	if err != nil {
		return "", mapErr(err, "creating container %s from %s", s.Name, s.Image)
	}
	return resp.ID, nil
}

func ptr[T any](v T) *T { return &v }

func (p *Client) Start(ctx context.Context, name string) error {
	return mapErr(containers.Start(p.ctx(ctx), name, nil), "starting container %s", name)
}

func (p *Client) Inspect(ctx context.Context, name string) (container.Info, error) {
	d, err := containers.Inspect(p.ctx(ctx), name, nil)
	if err != nil {
		return container.Info{}, mapErr(err, "inspecting container %s", name)
	}
	in := container.Info{ID: d.ID, Name: d.Name, Image: d.ImageName, Created: d.Created}
	if d.State != nil {
		in.State = container.State(d.State.Status)
		in.PID = d.State.Pid
		in.Exit = int(d.State.ExitCode)
	}
	if d.Config != nil {
		in.Labels = d.Config.Labels
	}
	for _, m := range d.Mounts {
		in.Mounts = append(in.Mounts, container.Mount{Source: m.Source, Target: m.Destination, ReadOnly: !m.RW})
	}
	return in, nil
}

func (p *Client) List(ctx context.Context, labels map[string]string) ([]container.Info, error) {
	var sel []string
	for k, v := range labels {
		sel = append(sel, k+"="+v)
	}
	opts := new(containers.ListOptions).WithAll(true)
	if len(sel) > 0 {
		opts = opts.WithFilters(map[string][]string{"label": sel})
	}
	list, err := containers.List(p.ctx(ctx), opts)
	if err != nil {
		return nil, mapErr(err, "listing containers")
	}
	out := make([]container.Info, 0, len(list))
	for _, c := range list {
		name := c.ID
		if len(c.Names) > 0 {
			name = c.Names[0]
		}
		out = append(out, container.Info{ID: c.ID, Name: name, Image: c.Image, State: container.State(c.State), PID: c.Pid,
			Exit: int(c.ExitCode), Labels: c.Labels, Created: c.Created})
	}
	return out, nil
}

func (p *Client) Logs(ctx context.Context, name string, o container.LogOptions, fn func(container.LogLine)) error {
	opts := new(containers.LogOptions).WithStdout(true).WithStderr(true).WithFollow(o.Follow)
	if o.Tail > 0 {
		opts = opts.WithTail(strconv.Itoa(o.Tail))
	}
	if !o.Since.IsZero() {
		opts = opts.WithSince(o.Since.Format(time.RFC3339Nano))
	}
	// The bindings hand over frames, not lines, on two channels; unbuffered
	// channels and one reader keep the service's order.
	stdout, stderr := make(chan string), make(chan string)
	done := make(chan error, 1)
	go func() { done <- containers.Logs(p.ctx(ctx), name, opts, stdout, stderr) }()
	var outBuf, errBuf lineBuffer
	for {
		select {
		case s := <-stdout:
			outBuf.feed(s, container.Stdout, fn)
		case s := <-stderr:
			errBuf.feed(s, container.Stderr, fn)
		case err := <-done:
			outBuf.flush(container.Stdout, fn)
			errBuf.flush(container.Stderr, fn)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return mapErr(err, "reading logs of %s", name)
		}
	}
}

// lineBuffer splits a stream of frames into lines, keeping partial lines
// until their end arrives.
type lineBuffer struct{ partial strings.Builder }

func (b *lineBuffer) feed(s string, st container.Stream, fn func(container.LogLine)) {
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			b.partial.WriteString(s)
			return
		}
		b.partial.WriteString(s[:i])
		fn(container.LogLine{Stream: st, Text: strings.TrimSuffix(b.partial.String(), "\r")})
		b.partial.Reset()
		s = s[i+1:]
	}
}

func (b *lineBuffer) flush(st container.Stream, fn func(container.LogLine)) {
	if b.partial.Len() > 0 {
		fn(container.LogLine{Stream: st, Text: b.partial.String()})
		b.partial.Reset()
	}
}

func (p *Client) Wait(ctx context.Context, name string) (int, error) {
	// "stopped" covers podman stop, "exited" a process that ended by itself.
	opts := &containers.WaitOptions{Conditions: []string{"exited", "stopped"}}
	code, err := containers.Wait(p.ctx(ctx), name, opts)
	if err != nil {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, mapErr(err, "waiting for container %s", name)
	}
	if code == -1 {
		// Podman answers -1 while the exit code is not yet recorded.
		in, err := p.Inspect(ctx, name)
		if err != nil {
			return -1, err
		}
		return in.Exit, nil
	}
	return int(code), nil
}

func (p *Client) Pause(ctx context.Context, name string) error {
	return mapErr(containers.Pause(p.ctx(ctx), name, nil), "pausing container %s", name)
}

func (p *Client) Unpause(ctx context.Context, name string) error {
	return mapErr(containers.Unpause(p.ctx(ctx), name, nil), "unpausing container %s", name)
}

func (p *Client) Stop(ctx context.Context, name string, timeout time.Duration) error {
	// The bindings turn podman's 304 into success; look first so callers
	// learn that nothing changed.
	in, err := p.Inspect(ctx, name)
	if err != nil {
		return err
	}
	if !in.Running() {
		return fmt.Errorf("stopping container %s: it is %s: %w", name, in.State, container.ErrNotModified)
	}
	secs := uint(timeout.Round(time.Second) / time.Second)
	return mapErr(containers.Stop(p.ctx(ctx), name, new(containers.StopOptions).WithTimeout(secs)), "stopping container %s", name)
}

func (p *Client) Kill(ctx context.Context, name string, sig syscall.Signal) error {
	opts := new(containers.KillOptions).WithSignal(strconv.Itoa(int(sig)))
	return mapErr(containers.Kill(p.ctx(ctx), name, opts), "sending signal %d to container %s", int(sig), name)
}

func (p *Client) Restart(ctx context.Context, name string, timeout time.Duration) error {
	secs := int(timeout.Round(time.Second) / time.Second)
	return mapErr(containers.Restart(p.ctx(ctx), name, new(containers.RestartOptions).WithTimeout(secs)), "restarting container %s", name)
}

func (p *Client) Remove(ctx context.Context, name string, o container.RemoveOptions) error {
	opts := new(containers.RemoveOptions).WithForce(o.Force).WithVolumes(o.Volumes)
	reports, err := containers.Remove(p.ctx(ctx), name, opts)
	if err != nil {
		return mapErr(err, "removing container %s", name)
	}
	for _, r := range reports {
		if r.Err != nil {
			return mapErr(r.Err, "removing container %s", name)
		}
	}
	return nil
}

// archive streams the tar podman makes of path in the container to fn.
func (p *Client) archive(ctx context.Context, name, path string, fn func(*tar.Reader) error) error {
	pr, pw := io.Pipe()
	copyFn, err := containers.CopyToArchive(p.ctx(ctx), name, path, pw)
	if err != nil {
		return mapErr(err, "copying %s out of container %s", path, name)
	}
	go func() { pw.CloseWithError(copyFn()) }()
	err = fn(tar.NewReader(pr))
	pr.CloseWithError(io.ErrClosedPipe) // unblock the copier if fn stopped early
	return err
}

func (p *Client) CopyOut(ctx context.Context, name, file string, w io.Writer) error {
	return p.archive(ctx, name, file, func(tr *tar.Reader) error {
		for {
			h, err := tr.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return fmt.Errorf("copying %s out of container %s: no regular file in the archive: %w", file, name, container.ErrNotFound)
				}
				return fmt.Errorf("copying %s out of container %s: %w", file, name, err)
			}
			if h.Typeflag == tar.TypeReg {
				if _, err := io.Copy(w, tr); err != nil {
					return fmt.Errorf("copying %s out of container %s: %w", file, name, err)
				}
				return nil
			}
		}
	})
}

func (p *Client) ListDir(ctx context.Context, name, dir string) ([]string, error) {
	var out []string
	err := p.archive(ctx, name, dir, func(tr *tar.Reader) error {
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("listing %s in container %s: %w", dir, name, err)
			}
			// Entries are "base/child[/...]": keep direct children.
			parts := strings.Split(strings.Trim(path.Clean(h.Name), "/"), "/")
			if len(parts) == 2 {
				out = append(out, parts[1])
			}
		}
	})
	return out, err
}

func (p *Client) ImageExists(ctx context.Context, ref string) (bool, error) {
	ok, err := images.Exists(p.ctx(ctx), ref, nil)
	if err != nil {
		return false, mapErr(err, "looking up image %s", ref)
	}
	return ok, nil
}

func (p *Client) Pull(ctx context.Context, ref string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	opts := new(images.PullOptions).WithProgressWriter(progress)
	if _, err := images.Pull(p.ctx(ctx), ref, opts); err != nil {
		return fmt.Errorf("pulling %s: %w: %v", ref, container.ErrNoImage, err)
	}
	return nil
}

func (p *Client) Import(ctx context.Context, tarball io.Reader, ref string) (string, error) {
	r, err := images.Import(p.ctx(ctx), tarball, new(images.ImportOptions).WithReference(ref))
	if err != nil {
		return "", mapErr(err, "importing rootfs tarball as %s", ref)
	}
	return r.Id, nil
}

func (p *Client) Version(ctx context.Context) (string, error) {
	v, err := system.Version(p.ctx(ctx), nil)
	if err != nil {
		return "", mapErr(err, "asking the podman service for its version")
	}
	if v.Server == nil {
		return "", errors.New("podman service reported no server version")
	}
	return v.Server.Version, nil
}
