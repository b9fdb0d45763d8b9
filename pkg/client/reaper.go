package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// ExpireCommand is the hidden subcommand a reaper runs:
// nfslab expire --id ID --created T --netns NS --at T.
const ExpireCommand = "expire"

// ReaperPoll is how often a reaper checks that its fault is still there,
// so that it ends soon after the fault is gone even when whatever removed
// it could not signal it.
const ReaperPoll = 5 * time.Second

// Reaper is one reaper process's job: heal fault ID, created at Created,
// in Netns at At, and nothing else.
type Reaper struct {
	ID      string
	Netns   string
	Created time.Time
	At      time.Time
	// PID is the reaper's own process, recorded with the fault so that
	// whatever heals the fault ends the reaper.
	PID   int
	Clock clock.Clock   // nil: clock.Real
	Poll  time.Duration // 0: ReaperPoll
}

// Run records the reaper with its fault, then waits until At and expires
// the fault. It returns nil without touching anything when the fault is
// gone or is another fault (same ID, other creation time), and when ctx
// ends (SIGTERM from the heal that removed the fault).
func (r Reaper) Run(ctx context.Context, inj netfault.Reaped) error {
	clk := r.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	poll := r.Poll
	if poll <= 0 {
		poll = ReaperPoll
	}
	err := inj.AttachReaper(ctx, r.Netns, r.ID, r.Created, r.PID)
	if errors.Is(err, netfault.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recording reaper of fault %s: %w", r.ID, err)
	}
	for {
		d := min(r.At.Sub(clk.Now()), poll)
		if d > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-clk.After(d):
			}
		}
		if !inj.Current(r.Netns, r.ID, r.Created) {
			return nil // healed by someone else
		}
		if clk.Now().Before(r.At) {
			continue
		}
		err := inj.Expire(context.WithoutCancel(ctx), r.Netns, r.ID, r.Created)
		if errors.Is(err, netfault.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("expiring fault %s: %w", r.ID, err)
		}
		return nil
	}
}
