package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Verdict is the outcome of watching a fault's counters for a window.
type Verdict struct {
	Bit      bool               `json:"bit"`
	FirstHit time.Duration      `json:"first_hit"`
	Packets  uint64             `json:"packets"`
	Findings []netfault.Finding `json:"findings,omitempty"`
}

// VerifyFunc watches fault id in netns until its counters move or window
// ends; on a zero-hit window it returns the injector's diagnosis.
type VerifyFunc func(ctx context.Context, inj netfault.Injector, clk clock.Clock, netns, id string, window, poll time.Duration) (Verdict, error)

// PollVerify is the default VerifyFunc: it polls List every poll interval.
func PollVerify(ctx context.Context, inj netfault.Injector, clk clock.Clock, netns, id string, window, poll time.Duration) (Verdict, error) {
	if poll <= 0 {
		poll = time.Second
	}
	start := clk.Now()
	deadline := start.Add(window)
	for {
		fs, err := inj.List(ctx, netns)
		if err != nil {
			return Verdict{}, fmt.Errorf("reading counters of fault %s: %w", id, err)
		}
		found := false
		for _, f := range fs {
			if f.ID != id {
				continue
			}
			found = true
			if f.Packets > 0 {
				return Verdict{Bit: true, FirstHit: clk.Now().Sub(start), Packets: f.Packets}, nil
			}
		}
		if !found {
			return Verdict{}, fmt.Errorf("verifying fault %s: %w", id, netfault.ErrNotFound)
		}
		now := clk.Now()
		if !now.Before(deadline) {
			break
		}
		wait := min(poll, deadline.Sub(now))
		select {
		case <-ctx.Done():
			return Verdict{}, ctx.Err()
		case <-clk.After(wait):
		}
	}
	fnd, err := inj.Diagnose(ctx, netns, id)
	if err != nil {
		return Verdict{}, fmt.Errorf("diagnosing fault %s: %w", id, err)
	}
	return Verdict{Findings: fnd}, nil
}
