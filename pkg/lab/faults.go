package lab

import (
	"context"

	"github.com/nfslab/nfslab/pkg/client"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Faults adapts a pkg/client Client (daemon or direct, same tags either
// way) to engine.Faults.
type Faults struct{ C client.Client }

var _ engine.Faults = Faults{}

func (f Faults) Plan(spec netfault.Spec) (netfault.Plan, error) {
	return f.C.Plan(context.Background(), spec)
}

func (f Faults) Apply(ctx context.Context, spec netfault.Spec) (netfault.Fault, error) {
	a, err := f.C.Apply(ctx, spec)
	return a.Fault, err
}

func (f Faults) List(ctx context.Context, netns string) ([]netfault.Fault, error) {
	return f.C.List(ctx, netns)
}

func (f Faults) Heal(ctx context.Context, netns, id string) error { return f.C.Heal(ctx, netns, id) }

func (f Faults) Diagnose(ctx context.Context, netns, id string) ([]netfault.Finding, error) {
	return f.C.Diagnose(ctx, netns, id)
}
