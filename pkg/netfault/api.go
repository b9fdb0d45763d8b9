package netfault

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when no fault with the given ID exists. Cleanup
// paths treat it as done.
var ErrNotFound = errors.New("fault not found")

// Fault is an applied fault as found in the kernel (or in the fake).
type Fault struct {
	ID      string    `json:"id"`
	Spec    Spec      `json:"spec"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Packets and Bytes are the sum of the fault's rule counters. Routes have
	// no counters; for them both stay 0 and Counted is false.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Counted bool   `json:"counted"`
	// Rules and Routes are the commands that made the fault, rendered once
	// from what Apply gave the kernel: its ID, its --datestop. Only Apply
	// sets them; List leaves them empty.
	Rules  []string `json:"rules,omitempty"`
	Routes []string `json:"routes,omitempty"`
	// Notes say how the fault's lifetime is enforced; the client or daemon
	// that applied it adds them.
	Notes []string `json:"notes,omitempty"`
}

// PlanID stands for the fault ID, which only Apply draws, in a Plan: in
// rule comments (nfslab:<id>) and route realms (realm <id>).
const PlanID = "<id>"

// Plan is what Apply would create, written as the commands a user would
// type, with PlanID in place of the fault ID.
type Plan struct {
	Rules  []string `json:"rules,omitempty"`  // "iptables -t filter -I NFSLAB-OUTPUT 1 -p tcp -d 10.0.0.5/32 --dport 2049 ... -j DROP"
	Routes []string `json:"routes,omitempty"` // "ip route add unreachable 10.0.0.5/32 proto 73 ..."
}

// Finding is one likely reason why a fault matches no traffic.
type Finding struct {
	// Cause is a stable short code: nat-before-filter, no-connection,
	// userspace-proxy, localio, earlier-accept, sport-mistake, local-port
	// (every one: Causes).
	Cause  string `json:"cause"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Faults is nfslab's one fault interface: the in-process Manager and the
// daemon and direct clients of pkg/client satisfy it; the CLI, the engine
// and the daemon use it. Methods that find faults act in one network
// namespace: "" is the caller's own.
type Faults interface {
	// Plan validates spec and returns what Apply would create, touching nothing.
	Plan(ctx context.Context, spec Spec) (Plan, error)
	// Apply validates spec (defaults already applied by the caller) and
	// creates the fault, all or nothing. The Fault returned carries its
	// Rules or Routes exactly as applied.
	Apply(ctx context.Context, spec Spec) (Fault, error)
	// List returns nfslab's faults in netns with their counters.
	List(ctx context.Context, netns string) ([]Fault, error)
	// Heal removes one fault; ErrNotFound if there is none with that ID.
	Heal(ctx context.Context, netns, id string) error
	// HealAll removes every nfslab object in netns (rules, chains, jumps,
	// routes) and returns the IDs it removed.
	HealAll(ctx context.Context, netns string) ([]string, error)
	// Diagnose explains why fault id may match no traffic.
	Diagnose(ctx context.Context, netns, id string) ([]Finding, error)
}

// Injector is Faults in the process that owns the kernel objects (the
// daemon, the direct client), which also sweeps what expired. Clients do
// not offer Sweep: whoever applies for them sweeps.
type Injector interface {
	Faults
	// Sweep removes expired faults and orphaned objects in netns.
	Sweep(ctx context.Context, netns string) ([]string, error)
}
