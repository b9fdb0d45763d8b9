package cleanup

import (
	"context"
	"fmt"
)

// Unpublisher removes every nfslab port publish in the namespaces named
// and in those its records name, and returns what it removed;
// *publish.Publisher satisfies it.
type Unpublisher interface {
	Sweep(ctx context.Context, namespaces ...string) ([]string, error)
}

// sweepPublish removes the publishes: the nat DNAT and MASQUERADE rules in
// nfslab's NFSLAB-PUBLISH-* chains, the chains and their jumps, and
// route_localnet back to the value recorded before.
func sweepPublish(ctx context.Context, o Options, sr *StepReport) {
	if o.Publish == nil {
		sr.Skipped = "no publisher given"
		return
	}
	nss := o.Namespaces
	if len(nss) == 0 {
		nss = []string{""}
	}
	ids, err := o.Publish.Sweep(ctx, nss...)
	sr.Removed = ids
	if err != nil {
		sr.Err = fmt.Errorf("removing port publishes: %w", err)
	}
}
