package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

type fakeFaults struct {
	mu        sync.Mutex
	n         int
	live      map[string]*netfault.Fault
	healed    []string
	applyErr  map[string]error // by Dst
	packets   uint64           // packets each new fault reports
	findings  []netfault.Finding
	diagnosed []string
}

func newFakeFaults() *fakeFaults { return &fakeFaults{live: map[string]*netfault.Fault{}} }

func (f *fakeFaults) Plan(_ context.Context, s netfault.Spec) (netfault.Plan, error) {
	if err := s.Validate(); err != nil {
		return netfault.Plan{}, err
	}
	return netfault.Plan{Rules: []string{"iptables -I NFSLAB-OUTPUT -d " + s.Dst + " -j DROP"}}, nil
}

func (f *fakeFaults) Apply(_ context.Context, s netfault.Spec) (netfault.Fault, error) {
	if err := s.Validate(); err != nil {
		return netfault.Fault{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.applyErr[s.Dst]; err != nil {
		return netfault.Fault{}, err
	}
	f.n++
	ft := &netfault.Fault{ID: fmt.Sprintf("f%d", f.n), Spec: s, Packets: f.packets, Counted: s.IsRule()}
	f.live[ft.ID] = ft
	applied := *ft
	applied.Rules = []string{"iptables -A NFSLAB-OUTPUT -d " + s.Dst + " -m comment --comment nfslab:" + ft.ID + " -j DROP"}
	return applied, nil
}

func (f *fakeFaults) List(_ context.Context, ns string) ([]netfault.Fault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netfault.Fault
	for _, ft := range f.live {
		if ft.Spec.Netns == ns {
			out = append(out, *ft)
		}
	}
	return out, nil
}

func (f *fakeFaults) Heal(_ context.Context, ns, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.live[id]; !ok {
		return netfault.ErrNotFound
	}
	delete(f.live, id)
	f.healed = append(f.healed, id)
	return nil
}

func (f *fakeFaults) HealAll(_ context.Context, ns string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, ft := range f.live {
		if ft.Spec.Netns == ns {
			delete(f.live, id)
			f.healed = append(f.healed, id)
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (f *fakeFaults) Diagnose(_ context.Context, _, id string) ([]netfault.Finding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.diagnosed = append(f.diagnosed, id)
	return f.findings, nil
}

func (f *fakeFaults) liveCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live)
}

type fakeStorage struct {
	mu        sync.Mutex
	setupErr  error
	rules     map[string]scenario.FaultfsRule
	teardowns int
	dropped   int
}

func (s *fakeStorage) Setup(context.Context) (StorageInfo, error) {
	if s.setupErr != nil {
		return StorageInfo{}, s.setupErr
	}
	return StorageInfo{DataDir: "/data", ServerAddr: "10.99.0.2"}, nil
}
func (s *fakeStorage) SetFault(_ context.Context, id string, r scenario.FaultfsRule) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rules == nil {
		s.rules = map[string]scenario.FaultfsRule{}
	}
	s.rules[id] = r
	return nil
}
func (s *fakeStorage) ClearFault(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rules, id)
	return nil
}
func (s *fakeStorage) DropCache(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped++
	return nil
}
func (s *fakeStorage) Teardown(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.teardowns++
	return nil
}
func (s *fakeStorage) ruleCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rules)
}

type fakeTarget struct {
	mu       sync.Mutex
	exits    chan Exit
	events   chan Event
	lines    chan Line
	actions  []string
	closed   int
	restarts int
}

func newFakeTarget() *fakeTarget {
	return &fakeTarget{exits: make(chan Exit, 4), events: make(chan Event, 4), lines: make(chan Line, 16)}
}

func (t *fakeTarget) Start(context.Context, string) error { return nil }
func (t *fakeTarget) Restart(ctx context.Context, between func(context.Context) error) error {
	t.mu.Lock()
	t.restarts++
	t.mu.Unlock()
	if between != nil {
		return between(ctx)
	}
	return nil
}
func (t *fakeTarget) Control(_ context.Context, action, c string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.actions = append(t.actions, action+":"+c)
	return nil
}
func (t *fakeTarget) Resolve(_ context.Context, ref string) (string, error) {
	return "", errors.New("no " + ref)
}
func (t *fakeTarget) Netns(context.Context, string) (string, error) { return "", ErrUnsupported }
func (t *fakeTarget) Exited() <-chan Exit                           { return t.exits }
func (t *fakeTarget) Lines() <-chan Line                            { return t.lines }
func (t *fakeTarget) Events() <-chan Event                          { return t.events }
func (t *fakeTarget) Close(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed++
	return nil
}
func (t *fakeTarget) got() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.actions...)
}

type fakeLoad struct {
	ch      chan journal.LoadSample
	stopped bool
}

func (l *fakeLoad) Start(context.Context) (<-chan journal.LoadSample, error) { return l.ch, nil }
func (l *fakeLoad) Stop(context.Context) error                               { l.stopped = true; return nil }

// fakeDetector reports a hit for each line whose text is a detector name.
type fakeDetector struct{}

func (fakeDetector) Run(ctx context.Context, lines <-chan Line) <-chan journal.Hit {
	out := make(chan journal.Hit, 16)
	go func() {
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return
				}
				out <- journal.Hit{Detector: l.Text, Evidence: []string{"evidence of " + l.Text}}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

type memJournal struct {
	mu   sync.Mutex
	recs []journal.Record
	// gate, if set, is called before a record is kept (tests hold the
	// writer there).
	gate func(journal.Record)
}

func (j *memJournal) Write(r journal.Record) error {
	if j.gate != nil {
		j.gate(r)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.recs = append(j.recs, r)
	return nil
}

func (j *memJournal) of(t journal.Type) []journal.Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []journal.Record
	for _, r := range j.recs {
		if r.Type == t {
			out = append(out, r)
		}
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
