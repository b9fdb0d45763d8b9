package mount

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
)

// ErrTimeout is returned when a filesystem call did not finish in time. The
// call itself may still be blocked in the kernel (a process in D state on
// a dead NFS server cannot be interrupted); its goroutine is abandoned.
var ErrTimeout = errors.New("filesystem call timed out")

// WithTimeout runs fn and returns its error, or ErrTimeout after d, or the
// context's error, whichever comes first. Use it for every filesystem call
// on a path that may sit on a dead NFS server (stat, open, readdir, sync):
//
//	err := mount.WithTimeout(ctx, 2*time.Second, func() error {
//		_, err := os.Stat(path)
//		return err
//	})
//
// When it times out, fn keeps running in its goroutine until the kernel
// returns; fn must not write to state the caller reads afterwards.
func WithTimeout(ctx context.Context, d time.Duration, fn func() error) error {
	return withTimeout(ctx, clock.Real{}, d, fn)
}

func withTimeout(ctx context.Context, clk clock.Clock, d time.Duration, fn func() error) error {
	done := make(chan error, 1) // buffered: an abandoned fn must not leak a blocked send
	go func() { done <- fn() }()
	var timer <-chan time.Time
	if d > 0 {
		timer = clk.After(d)
	}
	select {
	case err := <-done:
		return err
	case <-timer:
		return fmt.Errorf("%w after %s", ErrTimeout, d)
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
}
