// Package enginetest has in-memory backends for tests of code that drives
// the scenario engine (the CLI): no storage, no processes, no firewall.
package enginetest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// Faults is an in-memory injector whose faults report Packets packets.
type Faults struct {
	mu      sync.Mutex
	n       int
	Live    map[string]netfault.Fault
	Packets uint64
}

func (f *Faults) Plan(_ context.Context, s netfault.Spec) (netfault.Plan, error) {
	if err := s.Validate(); err != nil {
		return netfault.Plan{}, err
	}
	return netfault.Plan{Rules: []string{fmt.Sprintf("iptables -t filter -I NFSLAB-OUTPUT 1 -d %s -j DROP", s.Dst)}}, nil
}

func (f *Faults) Apply(_ context.Context, s netfault.Spec) (netfault.Fault, error) {
	if err := s.Validate(); err != nil {
		return netfault.Fault{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Live == nil {
		f.Live = map[string]netfault.Fault{}
	}
	f.n++
	x := netfault.Fault{ID: fmt.Sprintf("f%d", f.n), Spec: s, Packets: f.Packets, Counted: s.Counted()}
	f.Live[x.ID] = x
	x.Rules = []string{fmt.Sprintf("iptables -t filter -A NFSLAB-OUTPUT -d %s -m comment --comment nfslab:%s -j DROP", s.Dst, x.ID)}
	return x, nil
}

func (f *Faults) HealAll(context.Context, string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.Live {
		ids = append(ids, id)
	}
	clear(f.Live)
	return ids, nil
}

func (f *Faults) List(context.Context, string) ([]netfault.Fault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netfault.Fault
	for _, x := range f.Live {
		out = append(out, x)
	}
	return out, nil
}

func (f *Faults) Heal(_ context.Context, _, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.Live[id]; !ok {
		return netfault.ErrNotFound
	}
	delete(f.Live, id)
	return nil
}

func (f *Faults) Diagnose(context.Context, string, string) ([]netfault.Finding, error) {
	return nil, nil
}

// Count is how many faults are live.
func (f *Faults) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.Live)
}

// Storage is a no-op storage with an NFS server address.
type Storage struct{ Dir string }

func (s Storage) Setup(context.Context) (engine.StorageInfo, error) {
	return engine.StorageInfo{DataDir: s.Dir, ServerAddr: "10.213.0.2"}, nil
}
func (Storage) SetFault(context.Context, string, scenario.FaultfsRule) error { return nil }
func (Storage) ClearFault(context.Context, string) error                     { return nil }
func (Storage) DropCache(context.Context) error                              { return nil }
func (Storage) Teardown(context.Context) error                               { return nil }

// Target emits Script's lines at start (a detector sees them) and exits
// with ExitCode right after if Exit is set.
type Target struct {
	Script   []string
	Exit     bool
	ExitCode int
	lines    chan engine.Line
	exits    chan engine.Exit
}

func NewTarget(script ...string) *Target {
	return &Target{Script: script, lines: make(chan engine.Line, 64), exits: make(chan engine.Exit, 1)}
}

func (t *Target) Start(context.Context, string) error {
	for _, l := range t.Script {
		t.lines <- engine.Line{Source: "fake", Text: l}
	}
	if t.Exit {
		t.exits <- engine.Exit{Name: "fake", Code: t.ExitCode}
	}
	return nil
}
func (t *Target) Restart(ctx context.Context, between func(context.Context) error) error {
	if between != nil {
		return between(ctx)
	}
	return nil
}
func (t *Target) Control(context.Context, string, string) error { return nil }
func (t *Target) Resolve(_ context.Context, ref string) (string, error) {
	return "", errors.New("no " + ref)
}
func (t *Target) Netns(context.Context, string) (string, error) { return "", engine.ErrUnsupported }
func (t *Target) Exited() <-chan engine.Exit                    { return t.exits }
func (t *Target) Lines() <-chan engine.Line                     { return t.lines }
func (t *Target) Events() <-chan engine.Event                   { return nil }
func (t *Target) Close(context.Context) error                   { return nil }

// Detector reports a hit named after every line's text.
type Detector struct{}

func (Detector) Run(ctx context.Context, lines <-chan engine.Line) <-chan journal.Hit {
	out := make(chan journal.Hit, 64)
	go func() {
		for {
			select {
			case l := <-lines:
				out <- journal.Hit{Detector: l.Text, Evidence: []string{l.Text}}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
