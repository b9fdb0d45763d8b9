package podman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/container"
)

// When a Session starts a podman service of its own.
const (
	// OwnWhenAbsent: only when no service answers at URI and podman is
	// installed (a laptop without podman.socket, the lab VM without
	// systemd). The default.
	OwnWhenAbsent = ""
	// OwnAlways: always (--start-service), e.g. to use runc when the
	// machine's service uses a runtime the bindings cannot drive.
	OwnAlways = "always"
	// OwnNever: never; no service is an error.
	OwnNever = "never"
)

// Session is the podman service one nfslab command talks to: the one at
// URI, or one of nfslab's own, started on first use as nfslab's child
// (recorded in Records, so heal ends it; it dies with nfslab) and stopped
// by Close. Every container user of the command (the NFS server
// container, the Zeebe brokers, heal) shares it.
type Session struct {
	URI     string // "" is DefaultSocket ($CONTAINER_HOST)
	Own     string // OwnWhenAbsent, OwnAlways or OwnNever
	Dir     string // where an own service's socket goes ("" a new temp dir)
	Log     io.Writer
	Records *proctrack.Store

	mu     sync.Mutex
	rt     container.Runtime
	svc    *Service
	tmpDir string
}

// Runtime connects once and returns the same runtime on every call.
func (s *Session) Runtime(ctx context.Context) (container.Runtime, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rt != nil {
		return s.rt, nil
	}
	if s.Own != OwnAlways {
		rt, err := Connect(ctx, s.URI)
		if err == nil {
			s.rt = rt
			return rt, nil
		}
		if s.Own == OwnNever || !errors.Is(err, container.ErrNoService) {
			return nil, err
		}
		if _, lerr := exec.LookPath("podman"); lerr != nil {
			return nil, err
		}
	}
	dir := s.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "nfslab-podman-")
		if err != nil {
			return nil, fmt.Errorf("starting a podman service: %w", err)
		}
		dir, s.tmpDir = d, d
	}
	svc, err := StartService(ctx, ServiceOptions{Socket: filepath.Join(dir, fmt.Sprintf("podman-%d.sock", os.Getpid())), Log: s.Log, Records: s.Records})
	if err != nil {
		s.removeTmp()
		return nil, err
	}
	rt, err := Connect(ctx, svc.URI)
	if err != nil {
		_ = svc.Stop()
		s.removeTmp()
		return nil, err
	}
	s.svc, s.rt = svc, rt
	return rt, nil
}

// serviceRecord names the process record of a service a Session started.
const serviceRecord = "podman-service"

// ServiceRecorded reports whether records hold a podman service an nfslab
// command started (a live one, or one whose command was killed).
func ServiceRecorded(records *proctrack.Store) bool {
	entries, err := records.List()
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Kind == proctrack.KindProcess && e.Name == serviceRecord {
			return true
		}
	}
	return false
}

// Started is the service this session started (nil: none).
func (s *Session) Started() *Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.svc
}

// Close stops the service the session started, if any. Containers it ran
// keep running (conmon holds them): remove them first.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.svc != nil {
		err = s.svc.Stop()
		s.svc = nil
	}
	s.rt = nil
	s.removeTmp()
	return err
}

func (s *Session) removeTmp() {
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
		s.tmpDir = ""
	}
}
