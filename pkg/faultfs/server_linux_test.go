package faultfs_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/faultfs"
)

// Serve mounts, serves the rule API on the socket (a rule set through it
// bites), refuses a second server on the same socket, and on cancellation
// (as SIGTERM) unmounts and removes the socket and the mountpoint it made.
func TestServeLifecycle(t *testing.T) {
	needFUSE(t)
	base := t.TempDir()
	backing, mnt, sock := filepath.Join(base, "b"), filepath.Join(base, "m", "sub"), filepath.Join(base, "ctl", "c.sock")
	if err := os.Mkdir(backing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(backing, "x.log"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := faultfs.ServerConfig{Name: "t", Backing: backing, Mountpoint: mnt, Socket: sock}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan *faultfs.Server, 1)
	done := make(chan error, 1)
	go func() { done <- faultfs.Serve(ctx, cfg, func(s *faultfs.Server) { started <- s }) }()
	select {
	case s := <-started:
		if s.Socket() != sock || s.FS().Mountpoint() != mnt {
			t.Errorf("server socket %q mountpoint %q", s.Socket(), s.FS().Mountpoint())
		}
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not started after 10s")
	}
	if !mounted(t, mnt) {
		t.Fatalf("%s not mounted", mnt)
	}
	c := faultfs.NewUnixClient(sock)
	if _, err := c.Set(context.Background(), faultfs.Rule{Op: faultfs.OpOpen, PathGlob: "*.log", Errno: faultfs.Errno(syscall.EACCES)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "x.log")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("read with rule = %v, want EACCES", err)
	}
	// A live socket is never taken over.
	other := filepath.Join(base, "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := faultfs.StartServer(faultfs.ServerConfig{Backing: backing, Mountpoint: other, Socket: sock}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second server on a live socket: %v", err)
	}
	if mounted(t, other) {
		t.Errorf("refused server mounted %s", other)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if mounted(t, mnt) {
		t.Errorf("%s still mounted", mnt)
	}
	for _, p := range []string{sock, mnt} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
}

// A stale socket file (no server) is replaced; a failed mount leaves no
// socket and no mountpoint it created.
func TestStartServerStaleSocketAndFailedMount(t *testing.T) {
	needFUSE(t)
	base := t.TempDir()
	backing, sock := filepath.Join(base, "b"), filepath.Join(base, "c.sock")
	if err := os.Mkdir(backing, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	mnt := filepath.Join(base, "m")
	s, err := faultfs.StartServer(faultfs.ServerConfig{Backing: backing, Mountpoint: mnt, Socket: sock})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	missing := filepath.Join(base, "missing")
	_, err = faultfs.StartServer(faultfs.ServerConfig{Backing: missing, Mountpoint: mnt, Socket: sock})
	if err == nil {
		t.Fatal("mount of a missing backing directory succeeded")
	}
	if mounted(t, mnt) {
		t.Errorf("%s mounted after a failed start", mnt)
	}
	for _, p := range []string{sock, mnt} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after a failed start: %v", p, err)
		}
	}
}
