package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/pkg/netfault"
)

// InjectorFactory builds the in-process injector for the direct path. It is
// only called when the daemon does not answer.
type InjectorFactory func() (netfault.Injector, error)

// Auto returns a Daemon client when a daemon answers on socket and a Direct
// client otherwise. A daemon that refuses this user is an error, not a
// reason to go direct behind its back.
func Auto(ctx context.Context, socket string, newInjector InjectorFactory, opts DirectOptions) (Client, error) {
	if socket != "" {
		if _, err := os.Stat(socket); err == nil {
			d := NewDaemon(socket)
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := d.Ping(pctx)
			cancel()
			switch {
			case err == nil:
				return d, nil
			case errors.Is(err, ErrForbidden), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
				return nil, fmt.Errorf("daemon at %s refuses this user (run as root or join the socket's group): %w", socket, err)
			case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
				// A stale socket: no daemon runs.
			default:
				return nil, fmt.Errorf("daemon at %s does not answer properly: %w", socket, err)
			}
		}
	}
	inj, err := newInjector()
	if err != nil {
		return nil, fmt.Errorf("no daemon at %s and applying directly failed: %w", socket, err)
	}
	opts.Injector = inj
	return NewDirect(opts), nil
}
