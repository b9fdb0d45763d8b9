package faultfs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/internal/proctrack"
)

// ServerConfig is one faultfs instance: a mount and the control socket
// that serves its rule API.
type ServerConfig struct {
	// Name is the instance's name in messages.
	Name string
	// Backing is the directory passed through; Mountpoint is created if
	// missing (and then removed again by Close).
	Backing, Mountpoint string
	// Socket is the control socket's path; its directory is created. A
	// stale socket file is replaced, one a live server answers on never.
	Socket  string
	Options Options
	// Records, when set, holds a record of the mount with this process as
	// its server, so that `nfslab heal --all` finds the mount wherever
	// Mountpoint is once the server is gone (nil: not recorded).
	Records *proctrack.Store
}

// Server is a mounted faultfs serving its rule API on a Unix socket.
type Server struct {
	cfg        ServerConfig
	fs         *FS
	ln         net.Listener
	http       *http.Server
	createdMnt bool
	unrecord   func() error
}

// StartServer mounts cfg's filesystem and serves its rule API (Handler)
// on the control socket. On error nothing is left: no mount, no socket,
// no mountpoint it created.
func StartServer(cfg ServerConfig) (_ *Server, err error) {
	s := &Server{cfg: cfg}
	if _, err := os.Stat(cfg.Mountpoint); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(cfg.Mountpoint, 0o755); err != nil {
			return nil, fmt.Errorf("creating mountpoint %s: %w", cfg.Mountpoint, err)
		}
		s.createdMnt = true
	}
	defer func() {
		if err != nil && s.createdMnt {
			os.Remove(cfg.Mountpoint)
		}
	}()
	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o755); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	if s.ln, err = listenControl(cfg.Socket); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(cfg.Mountpoint)
	if err == nil {
		// Recorded before the mount exists: a crash in between leaves a
		// record of nothing, which heal drops; the other order could leave
		// an unrecorded mount.
		s.unrecord, err = cfg.Records.Put(proctrack.Record{Kind: proctrack.KindMount, Name: "faultfs " + cfg.Name, Path: abs})
	}
	if err != nil {
		s.ln.Close()
		os.Remove(cfg.Socket)
		return nil, fmt.Errorf("recording faultfs mount %s: %w", cfg.Mountpoint, err)
	}
	if s.fs, err = Mount(cfg.Backing, cfg.Mountpoint, cfg.Options); err != nil {
		s.unrecord()
		s.ln.Close()
		os.Remove(cfg.Socket)
		return nil, err
	}
	s.http = &http.Server{Handler: Handler(s.fs), ReadHeaderTimeout: 10 * time.Second}
	go s.http.Serve(s.ln)
	return s, nil
}

// FS is the mounted filesystem.
func (s *Server) FS() *FS { return s.fs }

// Socket is the control socket's path.
func (s *Server) Socket() string { return s.cfg.Socket }

// Close stops the API (bounded to 2 s), unmounts (lazily if the mount is
// busy, bounded to 15 s), removes the mountpoint if StartServer created it
// and the mount is gone, and removes the socket.
func (s *Server) Close() error {
	defer os.Remove(s.cfg.Socket)
	defer s.ln.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	s.http.Shutdown(sctx)
	cancel()
	uctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.fs.Unmount(uctx); err != nil {
		return fmt.Errorf("unmounting faultfs %s: %w", s.cfg.Name, err)
	}
	if s.createdMnt {
		os.Remove(s.cfg.Mountpoint)
	}
	if err := s.unrecord(); err != nil {
		return fmt.Errorf("removing the record of faultfs %s: %w", s.cfg.Name, err)
	}
	return nil
}

// Serve runs a server for cfg until ctx ends or the process gets SIGINT
// or SIGTERM, then closes it. started, if set, is called once the mount
// and the socket are up.
func Serve(ctx context.Context, cfg ServerConfig, started func(*Server)) error {
	s, err := StartServer(cfg)
	if err != nil {
		return err
	}
	if started != nil {
		started(s)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return s.Close()
}

// listenControl listens on sock, replacing a stale socket file but never
// one a live server answers on.
func listenControl(sock string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use by another faultfs", sock)
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket %s: %w", sock, err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restricting %s: %w", sock, err)
	}
	return ln, nil
}
