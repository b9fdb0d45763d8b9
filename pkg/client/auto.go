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

// ErrNoDaemon is returned by Dial when no daemon runs on the socket: no
// socket file, or a stale one nobody listens on.
var ErrNoDaemon = errors.New("no daemon answers")

// Dial returns a client of the daemon answering on socket. A daemon that
// refuses this user or answers wrongly is an error of its own, never
// ErrNoDaemon.
func Dial(ctx context.Context, socket string) (*Daemon, error) {
	if socket == "" {
		return nil, fmt.Errorf("%w: no socket given", ErrNoDaemon)
	}
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrNoDaemon, socket, err)
	}
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
		return nil, fmt.Errorf("%w at %s (a stale socket): %w", ErrNoDaemon, socket, err)
	default:
		return nil, fmt.Errorf("daemon at %s does not answer properly: %w", socket, err)
	}
}

// Auto returns a Daemon client when a daemon answers on socket and a Direct
// client otherwise. A daemon that refuses this user is an error, not a
// reason to go direct behind its back; so is an absent daemon when
// require is set (the user named the socket: a fault meant for another
// machine, through a forwarded socket, must not land on this one).
func Auto(ctx context.Context, socket string, require bool, newInjector InjectorFactory, opts DirectOptions) (Client, error) {
	d, err := Dial(ctx, socket)
	switch {
	case err == nil:
		return d, nil
	case !errors.Is(err, ErrNoDaemon) || require:
		return nil, err
	}
	inj, err := newInjector()
	if err != nil {
		return nil, fmt.Errorf("no daemon at %s and applying directly failed: %w", socket, err)
	}
	opts.Injector = inj
	return NewDirect(opts), nil
}
