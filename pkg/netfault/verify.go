package netfault

import (
	"context"
	"fmt"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
)

// DefaultVerifyWindow is how long Verify waits for a first hit.
const DefaultVerifyWindow = 10 * time.Second

// Verdict says whether a fault bit.
type Verdict struct {
	// Bit is true once the fault's counters left zero.
	Bit bool `json:"bit"`
	// Counted is false for faults without counters (routes); Bit is then
	// always false and nothing was waited for.
	Counted bool `json:"counted"`
	// FirstHit is the time from the start of Verify to the first poll that
	// saw a non-zero counter.
	FirstHit time.Duration `json:"first_hit,omitempty"`
	Packets  uint64        `json:"packets"`
	// Findings explain a fault that matched nothing during the window.
	Findings []Finding `json:"findings,omitempty"`
}

// Verify polls the counters of fault id every poll until they leave zero or
// window passes; then it asks Diagnose why nothing matched.
func Verify(ctx context.Context, inj Faults, clk clock.Clock, netns, id string, window, poll time.Duration) (Verdict, error) {
	if window <= 0 {
		window = DefaultVerifyWindow
	}
	if poll <= 0 {
		poll = time.Second
	}
	start := clk.Now()
	for {
		fs, err := inj.List(ctx, netns)
		if err != nil && fs == nil {
			return Verdict{}, fmt.Errorf("verifying %s: %w", id, err)
		}
		var f *Fault
		for i := range fs {
			if fs[i].ID == id {
				f = &fs[i]
			}
		}
		if f == nil {
			return Verdict{}, fmt.Errorf("verifying %s: %w", id, ErrNotFound)
		}
		if !f.Counted {
			return Verdict{}, nil
		}
		if f.Packets > 0 {
			return Verdict{Bit: true, Counted: true, FirstHit: clk.Now().Sub(start), Packets: f.Packets}, nil
		}
		if clk.Now().Sub(start) >= window {
			findings, err := inj.Diagnose(ctx, netns, id)
			if err != nil {
				return Verdict{Counted: true}, fmt.Errorf("diagnosing %s: %w", id, err)
			}
			return Verdict{Counted: true, Findings: findings}, nil
		}
		select {
		case <-ctx.Done():
			return Verdict{Counted: true}, ctx.Err()
		case <-clk.After(poll):
		}
	}
}
