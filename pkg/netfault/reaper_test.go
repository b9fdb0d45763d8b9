package netfault_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/netfault/netfaulttest"
)

func v6Route(dst string) netfault.Spec {
	return netfault.Spec{Kind: netfault.KindUnreachable, Dst: dst, For: 2 * time.Minute, Netns: "lab"}.WithDefaults()
}

// Two faults on one IPv6 prefix get two IDs, each carried by its route.
func TestRouteIDsUniquePerFaultV6(t *testing.T) {
	m, w, _, _ := newFake(t)
	ctx := context.Background()
	seen := map[string]bool{}
	for range 5 {
		f, err := m.Apply(ctx, v6Route("fd00:9::/64"))
		must(t, err)
		if seen[f.ID] {
			t.Fatalf("ID %s given to two faults on the same prefix", f.ID)
		}
		seen[f.ID] = true
		rs := w.Routes("lab").All()
		if len(rs) != 1 || rs[0].Window == 0 || rs[0].Realm != 0 {
			t.Fatalf("route does not carry the ID in its window metric: %+v", rs)
		}
		fs, err := m.List(ctx, "lab")
		must(t, err)
		if len(fs) != 1 || fs[0].ID != f.ID {
			t.Fatalf("listed %+v, want fault %s", fs, f.ID)
		}
		must(t, m.Heal(ctx, "lab", f.ID))
	}
	p, err := m.Plan(ctx, v6Route("fd00:9::/64"))
	if err != nil || len(p.Routes) != 1 || p.Routes[0] != "ip -n lab -6 route add unreachable fd00:9::/64 proto 73 window <id>" {
		t.Fatalf("plan %q, %v", p.Routes, err)
	}
}

// An old reaper removes nothing but its own fault: not a newer fault on the
// same prefix, not even one that happened to get the same ID.
func TestOldReaperLeavesNewFaultAlone(t *testing.T) {
	m, w, clk, dir := newFake(t)
	ctx := context.Background()
	a, err := m.Apply(ctx, v6Route("fd00:9::5"))
	must(t, err)
	reaperA := w.Procs.Start(501)
	must(t, m.AttachReaper(ctx, "lab", a.ID, a.Created, 501))
	// The record keeps the reaper as {"pid", "start"}, as before.
	files, _ := fs2(dir)
	if len(files) != 1 {
		t.Fatalf("state files %v, want one", files)
	}
	raw, err := os.ReadFile(filepath.Join(dir, files[0]))
	must(t, err)
	var rec struct {
		Reaper map[string]uint64 `json:"reaper"`
	}
	must(t, json.Unmarshal(raw, &rec))
	if want := map[string]uint64{"pid": 501, "start": reaperA.Start}; !maps.Equal(rec.Reaper, want) {
		t.Fatalf("recorded reaper %v, want %v", rec.Reaper, want)
	}
	must(t, m.Heal(ctx, "lab", a.ID))
	if w.Procs.Running(501) || len(w.Procs.Ended) != 1 || w.Procs.Ended[0] != reaperA {
		t.Fatalf("heal did not end the fault's reaper: ended %v", w.Procs.Ended)
	}
	if w.Procs.Signals[0] != syscall.SIGTERM {
		t.Fatalf("reaper ended with %v, want SIGTERM (it exits on its own)", w.Procs.Signals[0])
	}
	clk.Advance(time.Second)
	b, err := m.Apply(ctx, v6Route("fd00:9::5"))
	must(t, err)
	if b.ID == a.ID {
		t.Fatalf("second fault on the prefix reused ID %s", a.ID)
	}
	// A reaper of A that somehow still runs: it cannot attach, and its
	// expiry touches nothing, whether it names A's ID or (had the IDs
	// collided) B's ID with A's creation time.
	w.Procs.Start(502)
	if err := m.AttachReaper(ctx, "lab", a.ID, a.Created, 502); !errors.Is(err, netfault.ErrNotFound) {
		t.Fatalf("old reaper attached: %v", err)
	}
	for _, id := range []string{a.ID, b.ID} {
		if err := m.Expire(ctx, "lab", id, a.Created); !errors.Is(err, netfault.ErrNotFound) {
			t.Fatalf("Expire(%s, created of A) = %v, want ErrNotFound", id, err)
		}
	}
	fs, err := m.List(ctx, "lab")
	must(t, err)
	if len(fs) != 1 || fs[0].ID != b.ID || len(w.Routes("lab").All()) != 1 {
		t.Fatalf("the new fault was touched: %+v", fs)
	}
	if !m.Current("lab", b.ID, b.Created) || m.Current("lab", b.ID, a.Created) {
		t.Fatal("Current does not tell the faults apart by creation time")
	}
	// B's own reaper expires it.
	must(t, m.Expire(ctx, "lab", b.ID, b.Created))
	if len(w.Routes("lab").All()) != 0 {
		t.Fatal("Expire left the route")
	}
}

// A heal signals the recorded reaper only if its PID still belongs to it.
func TestHealSparesReusedReaperPID(t *testing.T) {
	m, w, _, _ := newFake(t)
	ctx := context.Background()
	f, err := m.Apply(ctx, v6Route("fd00:9::6"))
	must(t, err)
	w.Procs.Start(600)
	must(t, m.AttachReaper(ctx, "lab", f.ID, f.Created, 600))
	w.Procs.Start(600) // the reaper died; its PID went to another process
	must(t, m.Heal(ctx, "lab", f.ID))
	if !w.Procs.Running(600) || len(w.Procs.Ended) != 0 {
		t.Fatalf("heal signalled a process that only reuses the reaper's PID: %v", w.Procs.Ended)
	}
}

// Every way a fault goes ends its reaper: HealAll, Sweep, and a heal of a
// fault whose route someone removed by hand.
func TestEveryRemovalEndsTheReaper(t *testing.T) {
	m, w, clk, _ := newFake(t)
	ctx := context.Background()
	apply := func(dst string, pid int) netfault.Fault {
		f, err := m.Apply(ctx, v6Route(dst))
		must(t, err)
		w.Procs.Start(pid)
		must(t, m.AttachReaper(ctx, "lab", f.ID, f.Created, pid))
		return f
	}
	apply("fd00:9::1", 701)
	_, err := m.HealAll(ctx, "lab")
	must(t, err)
	apply("fd00:9::2", 702)
	clk.Advance(3 * time.Minute)
	_, err = m.Sweep(ctx, "lab")
	must(t, err)
	f := apply("fd00:9::3", 703)
	for _, r := range w.Routes("lab").All() {
		must(t, w.Routes("lab").RouteDel(&r))
	}
	must(t, m.Heal(ctx, "lab", f.ID))
	if n := w.Procs.Count(); n != 0 || len(w.Procs.Ended) != 3 {
		t.Fatalf("%d reapers still run, ended %v", n, w.Procs.Ended)
	}
}

// A reaper that records itself after its fault was healed finds no fault
// and leaves no record behind.
func TestAttachAfterHeal(t *testing.T) {
	m, w, _, dir := newFake(t)
	ctx := context.Background()
	f, err := m.Apply(ctx, v6Route("fd00:9::7"))
	must(t, err)
	// The route goes (a heal that had not seen a reaper yet) but the
	// record is still there when the reaper writes itself into it.
	for _, r := range w.Routes("lab").All() {
		must(t, w.Routes("lab").RouteDel(&r))
	}
	w.Procs.Start(801)
	if err := m.AttachReaper(ctx, "lab", f.ID, f.Created, 801); !errors.Is(err, netfault.ErrNotFound) {
		t.Fatalf("attach to a healed fault: %v", err)
	}
	if ents, _ := fs2(dir); len(ents) != 0 {
		t.Fatalf("record left: %v", ents)
	}
}

// Records are kept per namespace identity: the same name ("" = the
// caller's own) in another namespace sees none of them, so heal --all there
// leaves them alone.
func TestStateKeyedByNamespaceIdentity(t *testing.T) {
	dir := t.TempDir()
	hostW := netfaulttest.NewWorld()
	host, err := netfault.NewManager(hostW.Options(nil, dir))
	must(t, err)
	ctx := context.Background()
	f, err := host.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049, Label: "host fault"}.WithDefaults())
	must(t, err)

	// The CLI run inside `unshare -n`: its own (empty) kernel tables, the
	// same state directory, another namespace behind "".
	otherW := netfaulttest.NewWorld()
	otherW.SetNetnsID("", "net-other")
	other, err := netfault.NewManager(otherW.Options(nil, dir))
	must(t, err)
	ids, err := other.HealAll(ctx, "")
	if err != nil || len(ids) != 0 {
		t.Fatalf("heal --all in the other namespace: %v %v", ids, err)
	}
	if _, err := other.Sweep(ctx, ""); err != nil {
		t.Fatal(err)
	}
	fs, err := host.List(ctx, "")
	must(t, err)
	if len(fs) != 1 || fs[0].ID != f.ID || fs[0].Spec.Label != "host fault" || fs[0].Created.IsZero() {
		t.Fatalf("the host fault lost its record: %+v", fs)
	}
	ents, _ := fs2(dir)
	if len(ents) != 1 || !strings.HasPrefix(ents[0], "fake-self/") {
		t.Fatalf("records %v, want one under the host namespace's identity", ents)
	}
}
