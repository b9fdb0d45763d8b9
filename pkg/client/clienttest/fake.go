package clienttest

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Injector is an in-memory netfault.Injector, safe for concurrent use.
type Injector struct {
	Clock clock.Clock
	// Findings is what Diagnose returns for every fault.
	Findings []netfault.Finding
	// ApplyErr, if set, makes Apply fail without creating anything.
	ApplyErr error

	mu     sync.Mutex
	seq    int
	faults map[string]map[string]*netfault.Fault // netns -> id -> fault
	calls  map[string]int
}

var _ netfault.Injector = (*Injector)(nil)

// New returns an empty fake on clk.
func New(clk clock.Clock) *Injector {
	return &Injector{Clock: clk, faults: map[string]map[string]*netfault.Fault{}, calls: map[string]int{}}
}

func (f *Injector) count(op string) {
	f.calls[op]++
}

// Calls reports how often op (Apply, Heal, ...) was called.
func (f *Injector) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Faults returns the faults in netns, ordered by ID.
func (f *Injector) Faults(netns string) []netfault.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netfault.Fault
	for _, x := range f.faults[netns] {
		out = append(out, *x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Total is the number of faults in all namespaces.
func (f *Injector) Total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.faults {
		n += len(m)
	}
	return n
}

// Hit adds packets (and 100 bytes each) to a fault's counters, as traffic
// would.
func (f *Injector) Hit(netns, id string, packets uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.faults[netns][id]
	if !ok {
		return fmt.Errorf("fault %s in %q: %w", id, netns, netfault.ErrNotFound)
	}
	x.Packets += packets
	x.Bytes += 100 * packets
	return nil
}

func (f *Injector) Plan(_ context.Context, spec netfault.Spec) (netfault.Plan, error) {
	f.mu.Lock()
	f.count("Plan")
	f.mu.Unlock()
	if err := spec.Validate(); err != nil {
		return netfault.Plan{}, err
	}
	return plan(spec, netfault.PlanID), nil
}

func plan(spec netfault.Spec, id string) netfault.Plan {
	if !spec.Selects() {
		return netfault.Plan{Routes: []string{fmt.Sprintf("ip route add %s %s proto 73", spec.RouteType, spec.Dst)}}
	}
	target := "DROP"
	if spec.Kind == netfault.KindReject {
		target = "REJECT"
	}
	return netfault.Plan{Rules: []string{fmt.Sprintf("iptables -t filter -I NFSLAB-OUTPUT 1 -p %s -d %s --dport %d -m comment --comment nfslab:%s -j %s",
		spec.Proto, spec.Dst, spec.Port, id, target)}}
}

func (f *Injector) Apply(ctx context.Context, spec netfault.Spec) (netfault.Fault, error) {
	if err := ctx.Err(); err != nil {
		return netfault.Fault{}, err
	}
	if err := spec.Validate(); err != nil {
		return netfault.Fault{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("Apply")
	if f.ApplyErr != nil {
		return netfault.Fault{}, f.ApplyErr
	}
	f.seq++
	now := f.Clock.Now()
	x := &netfault.Fault{
		ID:      fmt.Sprintf("f%04d", f.seq),
		Spec:    spec,
		Created: now,
		Expires: now.Add(spec.For),
		Counted: spec.Counted(),
	}
	if f.faults[spec.Netns] == nil {
		f.faults[spec.Netns] = map[string]*netfault.Fault{}
	}
	f.faults[spec.Netns][x.ID] = x
	// Like the Manager: the commands as applied come back from Apply only.
	applied := *x
	p := plan(spec, x.ID)
	applied.Rules, applied.Routes = p.Rules, p.Routes
	return applied, nil
}

func (f *Injector) List(ctx context.Context, netns string) ([]netfault.Fault, error) {
	f.mu.Lock()
	f.count("List")
	f.mu.Unlock()
	return f.Faults(netns), nil
}

func (f *Injector) Heal(ctx context.Context, netns, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("Heal")
	if _, ok := f.faults[netns][id]; !ok {
		return fmt.Errorf("healing fault %s: %w", id, netfault.ErrNotFound)
	}
	delete(f.faults[netns], id)
	return nil
}

func (f *Injector) HealAll(ctx context.Context, netns string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("HealAll")
	ids := []string{}
	for id := range f.faults[netns] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	delete(f.faults, netns)
	return ids, nil
}

// Sweep removes faults whose lifetime has ended, as the kernel's
// --datestop leaves them behind.
func (f *Injector) Sweep(ctx context.Context, netns string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("Sweep")
	now := f.Clock.Now()
	ids := []string{}
	for id, x := range f.faults[netns] {
		if !now.Before(x.Expires) {
			ids = append(ids, id)
			delete(f.faults[netns], id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func (f *Injector) Diagnose(ctx context.Context, netns, id string) ([]netfault.Finding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("Diagnose")
	if _, ok := f.faults[netns][id]; !ok {
		return nil, fmt.Errorf("diagnosing fault %s: %w", id, netfault.ErrNotFound)
	}
	return append([]netfault.Finding(nil), f.Findings...), nil
}
