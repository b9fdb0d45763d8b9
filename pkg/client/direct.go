package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// ReaperFunc starts something that heals fault id, created at created, in
// netns at time at, even after the calling process has exited, and no
// later than the fault goes. It returns the reaper's PID.
type ReaperFunc func(id, netns string, created, at time.Time) (pid int, err error)

// DirectOptions configure a Direct client.
type DirectOptions struct {
	Injector netfault.Injector
	Clock    clock.Clock // nil: clock.Real
	// Reaper is started for faults the kernel cannot expire by itself
	// (routes). nil: SpawnReaper with this executable.
	Reaper ReaperFunc
}

// Direct is a Client that applies faults in-process through an Injector.
// Rules expire in the kernel (-m time --datestop); routes, which have no
// kernel expiry, get a detached reaper process, which records itself with
// its fault and is ended by whatever heals the fault. Expired leftovers are
// swept before every Heal and HealAll, and by a List that finds one.
type Direct struct {
	inj    netfault.Injector
	clk    clock.Clock
	reaper ReaperFunc

	mu   sync.Mutex
	seq  uint64
	subs map[chan daemonapi.Event]struct{}
}

var _ Client = (*Direct)(nil)

// NewDirect returns a Direct client.
func NewDirect(opts DirectOptions) *Direct {
	d := &Direct{inj: opts.Injector, clk: opts.Clock, reaper: opts.Reaper, subs: map[chan daemonapi.Event]struct{}{}}
	if d.clk == nil {
		d.clk = clock.Real{}
	}
	if d.reaper == nil {
		d.reaper = SpawnReaper
	}
	return d
}

func (d *Direct) Mode() string { return "direct" }
func (d *Direct) Close() error { return nil }

func (d *Direct) Plan(ctx context.Context, spec netfault.Spec) (netfault.Plan, error) {
	return d.inj.Plan(ctx, spec)
}

// Apply applies spec through the injector, which validates it, and starts
// a reaper for a route, which the kernel cannot expire by itself.
func (d *Direct) Apply(ctx context.Context, spec netfault.Spec) (netfault.Fault, error) {
	f, err := d.inj.Apply(ctx, spec)
	if err != nil {
		return netfault.Fault{}, err
	}
	if f.Spec.Netns == "" {
		f.Spec.Netns = spec.Netns
	}
	if spec.KernelExpiry() {
		f.Notes = append(f.Notes, fmt.Sprintf("the kernel stops matching it at %s (-m time --datestop); "+
			"the next heal, status or daemon start removes the leftover rule", f.Expires.Format(time.RFC3339)))
	} else {
		pid, err := d.reaper(f.ID, spec.Netns, f.Created, f.Expires)
		if err != nil {
			// A route nobody will remove is worse than no fault: undo it.
			herr := d.inj.Heal(context.WithoutCancel(ctx), spec.Netns, f.ID)
			return netfault.Fault{}, errors.Join(fmt.Errorf("starting the reaper that expires route fault %s: %w", f.ID, err), herr)
		}
		what := "routes have"
		if spec.IsShape() {
			what = "the ingress half (ifb) has"
		}
		f.Notes = append(f.Notes, fmt.Sprintf("%s no kernel expiry: reaper process %d (nfslab expire) removes it at %s", what,
			pid, f.Expires.Format(time.RFC3339)))
	}
	d.publish(daemonapi.Event{Type: daemonapi.EventFaultApplied, ID: f.ID, Netns: spec.Netns, Fault: &f})
	return f, nil
}

// sweep removes expired leftovers before a read or a heal, so that what
// the user sees is what still bites.
func (d *Direct) sweep(ctx context.Context, netns string) error {
	ids, err := d.inj.Sweep(ctx, netns)
	if err != nil {
		return fmt.Errorf("sweeping expired faults: %w", err)
	}
	if len(ids) > 0 {
		d.publish(daemonapi.Event{Type: daemonapi.EventSweepRemoved, Netns: netns, IDs: ids})
	}
	return nil
}

// List lists once, and sweeps and lists again only when what it found has
// an expired fault or one without a lifetime (an orphan): a scenario
// samples the counters every second, and in a TCG guest each scan's
// iptables commands cost about a third of a core.
func (d *Direct) List(ctx context.Context, netns string) ([]netfault.Fault, error) {
	fs, err := d.inj.List(ctx, netns)
	if err != nil {
		return nil, err
	}
	if d.sweepable(fs) {
		if err := d.sweep(ctx, netns); err != nil {
			return nil, err
		}
		if fs, err = d.inj.List(ctx, netns); err != nil {
			return nil, err
		}
	}
	for i := range fs {
		if fs[i].Spec.Netns == "" {
			fs[i].Spec.Netns = netns
		}
	}
	return fs, nil
}

// sweepable reports whether Sweep would remove one of fs.
func (d *Direct) sweepable(fs []netfault.Fault) bool {
	now := d.clk.Now()
	for _, f := range fs {
		if f.Expires.IsZero() || !now.Before(f.Expires) {
			return true
		}
	}
	return false
}

func (d *Direct) Heal(ctx context.Context, netns, id string) error {
	if err := d.sweep(ctx, netns); err != nil {
		return err
	}
	if err := d.inj.Heal(ctx, netns, id); err != nil {
		return err
	}
	d.publish(daemonapi.Event{Type: daemonapi.EventFaultHealed, ID: id, Netns: netns})
	return nil
}

func (d *Direct) HealAll(ctx context.Context, netns string) ([]string, error) {
	swept, err := d.inj.Sweep(ctx, netns)
	if err != nil {
		return nil, fmt.Errorf("sweeping expired faults: %w", err)
	}
	ids, err := d.inj.HealAll(ctx, netns)
	ids = append(swept, ids...)
	for _, id := range ids {
		d.publish(daemonapi.Event{Type: daemonapi.EventFaultHealed, ID: id, Netns: netns})
	}
	return ids, err
}

func (d *Direct) Diagnose(ctx context.Context, netns, id string) ([]netfault.Finding, error) {
	return d.inj.Diagnose(ctx, netns, id)
}

// Events streams the events of this client's own calls.
func (d *Direct) Events(ctx context.Context) (<-chan daemonapi.Event, error) {
	ch := make(chan daemonapi.Event, 64)
	d.mu.Lock()
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	go func() {
		<-ctx.Done()
		d.mu.Lock()
		delete(d.subs, ch)
		close(ch)
		d.mu.Unlock()
	}()
	return ch, nil
}

func (d *Direct) publish(e daemonapi.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	e.Seq = d.seq
	e.Time = d.clk.Now()
	for ch := range d.subs {
		select {
		case ch <- e:
		default:
		}
	}
}
