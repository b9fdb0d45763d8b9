package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// The engine's only calls to Backends.Faults are here: one to apply, one
// to heal, and the counters and diagnosis around them.

// applyFault applies spec and returns its ID and the commands as applied
// (the fault's ID, its --datestop).
func (r *run) applyFault(ctx context.Context, spec netfault.Spec) (id string, rules []string, err error) {
	f, err := r.b.Faults.Apply(ctx, spec)
	if err != nil {
		return "", nil, err
	}
	return f.ID, append(append([]string{}, f.Rules...), f.Routes...), nil
}

// healFault removes fault id; not found (expired, or healed by someone
// else) is done.
func (r *run) healFault(ctx context.Context, netns, id string) error {
	if err := r.b.Faults.Heal(ctx, netns, id); err != nil && !errors.Is(err, netfault.ErrNotFound) {
		return err
	}
	return nil
}

func (r *run) listFaults(ctx context.Context, netns string) ([]netfault.Fault, error) {
	return r.b.Faults.List(ctx, netns)
}

func (r *run) diagnoseFault(ctx context.Context, netns, id string) ([]netfault.Finding, error) {
	return r.b.Faults.Diagnose(ctx, netns, id)
}

// faultSpec builds the netfault spec of st, with the lifetime enforced in
// the kernel as a safety net: For plus a margin, or the rest of the run.
func (r *run) faultSpec(ctx context.Context, st *scenario.Step) (netfault.Spec, error) {
	spec, err := st.NetfaultSpec(r.resolve(ctx))
	if err != nil {
		return spec, err
	}
	if st.Fault.In != "" {
		ns, err := r.b.Target.Netns(ctx, st.Fault.In)
		if err != nil {
			return spec, fmt.Errorf("finding the network namespace of %s: %w", st.Fault.In, err)
		}
		spec.Netns = ns
	}
	life := st.For.D()
	if life == 0 {
		life = r.sc.Duration.D()
	}
	spec.For = life + time.Minute
	spec.Label = labelFor(r.o.RunID, st.ID)
	return spec, nil
}

func (r *run) resolve(ctx context.Context) func(string) (string, error) {
	return func(ref string) (string, error) {
		if ref == scenario.RefNFSServer {
			if r.info.ServerAddr == "" {
				return "", errors.New("the storage reported no NFS server address")
			}
			return r.info.ServerAddr, nil
		}
		return r.b.Target.Resolve(ctx, ref)
	}
}

// labelFor is the fault label: it names the run and the step so that
// `nfslab status` shows whose fault it is.
func labelFor(run, step string) string {
	l := "nfslab-run:" + run + " step:" + step
	if len(l) > 64 {
		l = l[:64]
	}
	return l
}
