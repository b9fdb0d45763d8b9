package client

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/netfault/netfaulttest"
)

// attachSignal tells the test when a fake reaper has recorded itself.
type attachSignal struct {
	netfault.Reaped
	attached chan error
}

func (a attachSignal) AttachReaper(ctx context.Context, netns, id string, created time.Time, pid int) error {
	err := a.Reaped.AttachReaper(ctx, netns, id, created, pid)
	a.attached <- err
	return err
}

// fakeReapers runs each reaper as a goroutine standing for a process in
// the world's process table: a heal that ends the process cancels it.
type fakeReapers struct {
	w       *netfaulttest.World
	m       *netfault.Manager
	wg      sync.WaitGroup
	mu      sync.Mutex
	pid     int
	exited  map[int]chan struct{}
	errs    chan error
	healing chan struct{}
}

func (f *fakeReapers) spawn(id, netns string, created, at time.Time) (int, error) {
	f.mu.Lock()
	f.pid++
	pid := f.pid
	exited := make(chan struct{})
	f.exited[pid] = exited
	f.mu.Unlock()
	f.w.Procs.Start(pid)
	ctx, cancel := context.WithCancel(context.Background())
	sig := attachSignal{Reaped: f.m, attached: make(chan error, 1)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(exited)
		defer f.w.Procs.Exit(pid)
		defer cancel()
		go func() { <-f.w.Procs.Done(pid); cancel() }()
		// Poll an hour: only the heal's signal can end it in time.
		r := Reaper{ID: id, Netns: netns, Created: created, At: at, PID: pid, Poll: time.Hour}
		if err := r.Run(ctx, sig); err != nil {
			f.errs <- err
		}
	}()
	if err := <-sig.attached; err != nil {
		return 0, err
	}
	return pid, nil
}

// TestThirtyApplyHealCyclesLeaveNoReaper: the defect left 15 reapers
// after 30 cycles, each living until its fault's old expiry.
func TestThirtyApplyHealCyclesLeaveNoReaper(t *testing.T) {
	w := netfaulttest.NewWorld()
	m, err := netfault.NewManager(w.Options(clock.Real{}, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	// PIDs from 1000: PID 1 is init, which a heal never signals.
	fr := &fakeReapers{w: w, m: m, pid: 999, exited: map[int]chan struct{}{}, errs: make(chan error, 64)}
	d := NewDirect(DirectOptions{Injector: m, Reaper: fr.spawn})
	ctx := context.Background()
	spec := netfault.Spec{Kind: netfault.KindUnreachable, Dst: "fd00:7::/64", For: 2 * time.Minute, Netns: "lab"}.WithDefaults()
	ids := map[string]bool{}
	for i := range 30 {
		a, err := d.Apply(ctx, spec)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if ids[a.ID] {
			t.Fatalf("cycle %d: ID %s reused", i, a.ID)
		}
		ids[a.ID] = true
		if err := d.Heal(ctx, "lab", a.ID); err != nil {
			t.Fatalf("cycle %d heal: %v", i, err)
		}
		fr.mu.Lock()
		exited := fr.exited[fr.pid]
		fr.mu.Unlock()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Fatalf("cycle %d: the reaper of %s outlived its heal", i, a.ID)
		}
	}
	fr.wg.Wait()
	close(fr.errs)
	for err := range fr.errs {
		t.Error(err)
	}
	if n := w.Procs.Count(); n != 0 || len(w.Procs.Ended) != 30 {
		t.Fatalf("%d reapers run after 30 cycles; heal ended %d", n, len(w.Procs.Ended))
	}
	t.Logf("30 apply/heal cycles: %d reapers running, %d ended by heal", w.Procs.Count(), len(w.Procs.Ended))
}

// A reaper expires its own fault at its time, and only that fault.
func TestReaperExpiresOnlyItsFault(t *testing.T) {
	w := netfaulttest.NewWorld()
	clk := clock.NewFake(t0)
	m, err := netfault.NewManager(w.Options(clk, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spec := netfault.Spec{Kind: netfault.KindUnreachable, Dst: "fd00:7::1", For: time.Minute}.WithDefaults()
	old, err := m.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	w.Procs.Start(41)
	if err := m.Heal(ctx, "", old.ID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	cur, err := m.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// The old fault's reaper, started late: nothing to do.
	done := make(chan error, 1)
	go func() {
		done <- Reaper{ID: old.ID, Created: old.Created, At: old.Expires, PID: 41, Clock: clk}.Run(ctx, m)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("old reaper did not give up")
	}
	// The current fault's reaper heals it at its expiry.
	w.Procs.Start(42)
	go func() {
		done <- Reaper{ID: cur.ID, Created: cur.Created, At: cur.Expires, PID: 42, Clock: clk, Poll: time.Hour}.Run(ctx, m)
	}()
	for !m.Current("", cur.ID, cur.Created) || clk.Waiters() == 0 {
		time.Sleep(time.Millisecond)
	}
	if fs, _ := m.List(ctx, ""); len(fs) != 1 || fs[0].ID != cur.ID {
		t.Fatalf("before expiry: %+v", fs)
	}
	clk.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fs, _ := m.List(ctx, ""); len(fs) != 0 {
		t.Fatalf("after expiry: %+v", fs)
	}
}
