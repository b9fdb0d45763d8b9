package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/pkg/daemon"
)

// The test binary re-executed as another user acts as a socket client.
func TestMain(m *testing.M) {
	if sock := os.Getenv("NFSLAB_TEST_PEER_SOCKET"); sock != "" {
		os.Exit(peerClient(sock))
	}
	os.Exit(m.Run())
}

// peerClient GETs /v1/health and prints the status code and body.
func peerClient(sock string) int {
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://x/v1/health")
	if err != nil {
		fmt.Println("error:", err)
		return 3
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s", resp.StatusCode, b)
	return 0
}

func TestPeerAllowedPolicy(t *testing.T) {
	for _, tc := range []struct {
		c    daemon.PeerCred
		gid  uint32
		want bool
	}{
		{daemon.PeerCred{UID: 0, GID: 0}, 0, true},
		{daemon.PeerCred{UID: 0, GID: 5}, 100, true},
		{daemon.PeerCred{UID: 1000, GID: 1000}, 0, false},
		{daemon.PeerCred{UID: 1000, GID: 1000}, 1000, true},
		{daemon.PeerCred{UID: 1000, GID: 1000, Groups: []uint32{27, 998}}, 998, true},
		{daemon.PeerCred{UID: 1000, GID: 1000, Groups: []uint32{27}}, 998, false},
	} {
		if got := daemon.PeerAllowed(tc.c, tc.gid); got != tc.want {
			t.Errorf("PeerAllowed(%+v, %d) = %v, want %v", tc.c, tc.gid, got, tc.want)
		}
	}
}

func TestListenSetsModesAndRefusesSecondDaemon(t *testing.T) {
	dir := filepath.Join(shortDir(t), "run")
	sock := filepath.Join(dir, "nfslab.sock")
	ln, err := daemon.Listen(sock, daemon.ListenOptions{Group: os.Getegid()})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	di, _ := os.Stat(dir)
	si, _ := os.Lstat(sock)
	if di.Mode().Perm() != 0o750 || si.Mode().Perm() != 0o660 || si.Mode()&os.ModeSocket == 0 {
		t.Fatalf("dir mode %v, socket mode %v; want 0750 and 0660 socket", di.Mode(), si.Mode())
	}
	if st := si.Sys().(*syscall.Stat_t); int(st.Gid) != os.Getegid() {
		t.Fatalf("socket group %d, want %d", st.Gid, os.Getegid())
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, err = daemon.Listen(sock, daemon.ListenOptions{Group: os.Getegid()})
	if !errors.Is(err, daemon.ErrAlreadyRunning) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("second Listen: %v, want ErrAlreadyRunning naming the socket", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(shortDir(t), "s.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // a daemon killed with SIGKILL leaves its socket file behind
	ln, err := daemon.Listen(sock, daemon.ListenOptions{Group: os.Getegid()})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()
}

func TestListenRefusesForeignOwner(t *testing.T) {
	privtest.Root(t)
	sock := filepath.Join(shortDir(t), "s.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if err := os.Lchown(sock, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err = daemon.Listen(sock, daemon.ListenOptions{})
	if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("Listen on a socket of uid 65534: %v, want refusal naming the owner", err)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("foreign socket was touched: %v", err)
	}
}

// TestPeerCredRefusesOtherUser runs a client as uid/gid 65534 against a
// world-writable socket, so that only the SO_PEERCRED check stands between
// it and the API.
func TestPeerCredRefusesOtherUser(t *testing.T) {
	privtest.Root(t)
	dir, err := os.MkdirTemp("", "nfslp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a 0700 build directory: copy it where the
	// other user can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "peer.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	e := startAt(t, filepath.Join(dir, "s.sock"), daemon.ListenOptions{Group: 0, Mode: 0o666})

	run := func(uid, gid uint32) string {
		cmd := exec.Command(bin)
		cmd.Env = []string{"NFSLAB_TEST_PEER_SOCKET=" + e.socket}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("peer client as %d:%d: %v: %s", uid, gid, err, out)
		}
		return string(out)
	}
	if out := run(65534, 65534); !strings.HasPrefix(out, "403 ") || !strings.Contains(out, "uid 65534") {
		t.Fatalf("other user got %q, want a 403 naming uid 65534", out)
	}
	// A member of the socket's group (gid 0 here) is admitted.
	if out := run(65534, 0); !strings.HasPrefix(out, "200 ") {
		t.Fatalf("group member got %q, want 200", out)
	}
}

func startAt(t *testing.T, sock string, lo daemon.ListenOptions) *env {
	t.Helper()
	e := &env{socket: sock}
	srv, err := daemon.New(daemon.Options{Injector: nopInjector(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := daemon.Listen(sock, lo)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	e.srv = srv
	return e
}
