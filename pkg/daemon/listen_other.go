//go:build !linux

package daemon

import (
	"errors"
	"log/slog"
	"net"
	"os"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/nfslab/nfslab.sock"

// ErrAlreadyRunning is returned by Listen when another daemon answers.
var ErrAlreadyRunning = errors.New("another nfslab daemon is running")

// ErrForeignSocket is returned by Listen when the socket path belongs to
// another user.
var ErrForeignSocket = errors.New("socket path owned by another user")

// ListenOptions set the socket's ownership and permissions.
type ListenOptions struct {
	Group   int
	Mode    os.FileMode
	DirMode os.FileMode
	Logger  *slog.Logger
}

// Listen needs SO_PEERCRED, which is Linux-only.
func Listen(path string, opts ListenOptions) (net.Listener, error) {
	return nil, errors.New("the nfslab daemon needs Linux (SO_PEERCRED)")
}
