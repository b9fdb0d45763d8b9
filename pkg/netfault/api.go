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
}

// Plan is what Apply would create, written as the commands a user would type.
type Plan struct {
	Rules  []string `json:"rules,omitempty"`  // "iptables -t filter -I NFSLAB-OUTPUT 1 -p tcp -d 10.0.0.5/32 --dport 2049 ... -j DROP"
	Routes []string `json:"routes,omitempty"` // "ip route add unreachable 10.0.0.5/32 proto 73 ..."
}

// Finding is one likely reason why a fault matches no traffic.
type Finding struct {
	// Cause is a stable short code: nat-before-filter, no-connection,
	// userspace-proxy, localio, earlier-accept, sport-mistake.
	Cause  string `json:"cause"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Injector applies, lists and removes nfslab's network faults. Methods that
// find faults act in one network namespace: "" is the caller's own.
type Injector interface {
	// Plan validates spec and returns what Apply would create, touching nothing.
	Plan(spec Spec) (Plan, error)
	// Apply validates spec (defaults already applied by the caller) and
	// creates the fault, all or nothing.
	Apply(ctx context.Context, spec Spec) (Fault, error)
	// List returns nfslab's faults in netns with their counters.
	List(ctx context.Context, netns string) ([]Fault, error)
	// Heal removes one fault; ErrNotFound if there is none with that ID.
	Heal(ctx context.Context, netns, id string) error
	// HealAll removes every nfslab object in netns (rules, chains, jumps,
	// routes) and returns the IDs it removed.
	HealAll(ctx context.Context, netns string) ([]string, error)
	// Sweep removes expired faults and orphaned objects in netns.
	Sweep(ctx context.Context, netns string) ([]string, error)
	// Diagnose explains why fault id may match no traffic.
	Diagnose(ctx context.Context, netns, id string) ([]Finding, error)
}
