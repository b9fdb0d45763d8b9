package client

import (
	"context"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/daemon"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Applied is what Apply returns: the fault, the rules and routes it is made
// of, and notes on how its lifetime is enforced.
type Applied = daemon.ApplyResponse

// Client applies, lists and heals faults, through the daemon or directly.
type Client interface {
	// Apply creates the fault; spec should have its defaults applied.
	Apply(ctx context.Context, spec netfault.Spec) (Applied, error)
	// Plan returns what Apply would create, touching nothing.
	Plan(ctx context.Context, spec netfault.Spec) (netfault.Plan, error)
	// List returns nfslab's faults in netns ("" is the host namespace).
	List(ctx context.Context, netns string) ([]netfault.Fault, error)
	// Heal removes one fault; an error wrapping netfault.ErrNotFound if
	// there is none with that ID.
	Heal(ctx context.Context, netns, id string) error
	// HealAll removes every nfslab object in netns and returns the IDs.
	HealAll(ctx context.Context, netns string) ([]string, error)
	// Diagnose explains why a fault may match no traffic.
	Diagnose(ctx context.Context, netns, id string) ([]netfault.Finding, error)
	// Events streams events until ctx ends. The daemon streams all of its
	// events; the direct client only those of its own calls.
	Events(ctx context.Context) (<-chan daemon.Event, error)
	// Mode is "daemon" or "direct", for messages.
	Mode() string
	Close() error
}

// Verify watches fault id through c until its counters move or window
// ends, and on a zero-hit window returns the diagnosis.
func Verify(ctx context.Context, c Client, clk clock.Clock, netns, id string, window, poll time.Duration) (daemon.Verdict, error) {
	return netfault.Verify(ctx, injector{c}, clk, netns, id, window, poll)
}

// injector exposes the read side of a Client as a netfault.Injector for
// verifiers written against the Injector.
type injector struct{ c Client }

func (i injector) Plan(spec netfault.Spec) (netfault.Plan, error) {
	return i.c.Plan(context.Background(), spec)
}
func (i injector) Apply(ctx context.Context, spec netfault.Spec) (netfault.Fault, error) {
	a, err := i.c.Apply(ctx, spec)
	return a.Fault, err
}
func (i injector) List(ctx context.Context, netns string) ([]netfault.Fault, error) {
	return i.c.List(ctx, netns)
}
func (i injector) Heal(ctx context.Context, netns, id string) error { return i.c.Heal(ctx, netns, id) }
func (i injector) HealAll(ctx context.Context, netns string) ([]string, error) {
	return i.c.HealAll(ctx, netns)
}
func (i injector) Sweep(ctx context.Context, netns string) ([]string, error) { return nil, nil }
func (i injector) Diagnose(ctx context.Context, netns, id string) ([]netfault.Finding, error) {
	return i.c.Diagnose(ctx, netns, id)
}
