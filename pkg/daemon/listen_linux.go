package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/nfslab/nfslab.sock"

// ErrAlreadyRunning is returned by Listen when another daemon answers on the
// socket.
var ErrAlreadyRunning = errors.New("another nfslab daemon is running")

// ErrForeignSocket is returned by Listen when the socket path belongs to
// another user: a configuration mistake, not something to overwrite.
var ErrForeignSocket = errors.New("socket path owned by another user")

// ListenOptions set the socket's ownership and permissions.
type ListenOptions struct {
	// Group owns the socket and the directory Listen creates; its members may
	// use the daemon. 0 (root) by default.
	Group int
	// Mode of the socket; 0 means 0660.
	Mode os.FileMode
	// DirMode of a directory Listen creates; 0 means 0750.
	DirMode os.FileMode
	Logger  *slog.Logger
}

// Listen creates the daemon's unix socket at path and returns a listener
// that admits only root and members of the socket's group (SO_PEERCRED).
// It refuses a path owned by another user and a socket on which another
// daemon answers; a stale socket of an earlier run is replaced.
func Listen(path string, opts ListenOptions) (net.Listener, error) {
	if opts.Mode == 0 {
		opts.Mode = 0o660
	}
	if opts.DirMode == 0 {
		opts.DirMode = 0o750
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, opts.DirMode); err != nil {
			return nil, fmt.Errorf("creating socket directory %s: %w", dir, err)
		}
		// MkdirAll is subject to the umask; set the mode we promised.
		if err := os.Chmod(dir, opts.DirMode); err != nil {
			return nil, fmt.Errorf("setting mode of %s: %w", dir, err)
		}
		if err := os.Chown(dir, -1, opts.Group); err != nil {
			return nil, fmt.Errorf("setting group of %s to %d: %w", dir, opts.Group, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("checking socket directory %s: %w", dir, err)
	}
	if err := checkExisting(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, opts.Mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting mode of socket %s: %w", path, err)
	}
	if err := os.Chown(path, -1, opts.Group); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting group of socket %s to %d: %w", path, opts.Group, err)
	}
	return &peerListener{UnixListener: ln, gid: uint32(opts.Group), log: opts.Logger}, nil
}

// checkExisting decides what to do with something already at path.
func checkExisting(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking socket %s: %w", path, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: socket %s is owned by uid %d, not by this user (uid %d): refusing to start; "+
			"is another user's daemon running? remove the file if it is stale", ErrForeignSocket, path, st.Uid, os.Geteuid())
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket: refusing to replace it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: a daemon answers on %s (stop it first, or use --socket)", ErrAlreadyRunning, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("checking whether a daemon answers on %s: %w", path, err)
	}
	// Nobody listens: a socket left by a daemon that was killed.
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	return nil
}

// PeerCred is what the kernel says about the process at the other end.
type PeerCred struct {
	PID, UID, GID uint32
	Groups        []uint32 // supplementary groups, from /proc/PID/status
}

// PeerAllowed is the socket's admission policy: root, or a member (primary
// or supplementary) of the socket's group.
func PeerAllowed(c PeerCred, sockGID uint32) bool {
	if c.UID == 0 || c.GID == sockGID {
		return true
	}
	for _, g := range c.Groups {
		if g == sockGID {
			return true
		}
	}
	return false
}

// peerListener refuses connections from peers PeerAllowed rejects.
type peerListener struct {
	*net.UnixListener
	gid uint32
	log *slog.Logger
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		cred, err := peerCred(c)
		if err != nil {
			l.log.Warn("refusing connection: cannot read peer credentials", "err", err)
			c.Close()
			continue
		}
		if PeerAllowed(cred, l.gid) {
			return c, nil
		}
		l.log.Warn("refusing connection", "peer_pid", cred.PID, "peer_uid", cred.UID, "peer_gid", cred.GID, "socket_gid", l.gid)
		go refuse(c, cred, l.gid)
	}
}

// refuse answers the peer's first request with a plain HTTP 403 so that
// the client sees why; nothing of the request reaches the API.
func refuse(c *net.UnixConn, cred PeerCred, gid uint32) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	// Read the request head first: an HTTP client discards a reply that
	// arrives before it has sent its request.
	if req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(c, 1<<16))); err == nil {
		req.Body.Close()
	}
	msg := fmt.Sprintf(`{"error":"peer uid %d (gid %d) is not root and not in the socket's group %d","code":"forbidden"}`+"\n", cred.UID, cred.GID, gid)
	fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)
}

func peerCred(c *net.UnixConn) (PeerCred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return PeerCred{}, err
	}
	var uc *unix.Ucred
	var sockErr error
	if err := raw.Control(func(fd uintptr) {
		uc, sockErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return PeerCred{}, err
	}
	if sockErr != nil {
		return PeerCred{}, fmt.Errorf("getsockopt SO_PEERCRED: %w", sockErr)
	}
	pc := PeerCred{PID: uint32(uc.Pid), UID: uc.Uid, GID: uc.Gid}
	if pc.UID != 0 && uc.Pid > 0 {
		pc.Groups = procGroups(int(uc.Pid))
	}
	return pc, nil
}

// procGroups reads the supplementary groups of pid; nil if unknown, which
// only ever denies.
func procGroups(pid int) []uint32 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		var out []uint32
		for _, s := range strings.Fields(rest) {
			if n, err := strconv.ParseUint(s, 10, 32); err == nil {
				out = append(out, uint32(n))
			}
		}
		return out
	}
	return nil
}
