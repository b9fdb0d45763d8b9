package proctrack

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/internal/statefile"
)

// Remove deletes e's record; a missing one is done.
func (s *Store) Remove(e Entry) error { return statefile.Remove(s.Dir, e.Key) }

// End ends every recorded process: one that still runs (same PID and start
// time) gets SIGKILL, its process group too, and End waits up to wait for
// it to go; one that is gone, or whose PID now belongs to another process,
// is done and never signalled. Each record is removed once its process is
// gone. With keepLive, a process whose owner still runs is left to its
// owner (which ends it) and reported as kept. ended names the processes
// killed.
func (s *Store) End(ctx context.Context, keepLive bool, wait time.Duration) (ended, kept []string, err error) {
	es, err := s.List()
	if err != nil {
		return nil, nil, fmt.Errorf("listing process records: %w", err)
	}
	p := s.procs()
	var errs []error
	// Newest first: the reverse of creation.
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if e.Kind != KindProcess {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		desc := fmt.Sprintf("%s pid %d", e.Name, e.Proc.PID)
		if Alive(p, e.Proc) {
			if keepLive && Alive(p, e.Owner) {
				kept = append(kept, fmt.Sprintf("%s (its nfslab process %d still runs)", desc, e.Owner.PID))
				continue
			}
			if err := kill(ctx, p, e.Proc, wait); err != nil {
				errs = append(errs, fmt.Errorf("ending %s: %w", desc, err))
				continue
			}
			ended = append(ended, desc)
		}
		if err := s.Remove(e); err != nil {
			errs = append(errs, err)
		}
	}
	return ended, kept, errors.Join(errs...)
}

// kill sends SIGKILL to id's process group and to id, and waits until id
// is gone. The start time was checked just before; the group is the
// child's own (Setpgid), so its ID is the child's PID.
func kill(ctx context.Context, p Procs, id Ident, wait time.Duration) error {
	if err := p.Kill(-id.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill -KILL -%d: %w", id.PID, err)
	}
	if err := p.Kill(id.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill -KILL %d: %w", id.PID, err)
	}
	deadline := time.Now().Add(wait)
	for Alive(p, id) {
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still runs %v after SIGKILL (stuck in the kernel?)", id.PID, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
