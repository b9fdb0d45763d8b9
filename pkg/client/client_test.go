package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/client/clienttest"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/netfault"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func rule(dst string) netfault.Spec {
	return netfault.Spec{Kind: netfault.KindDrop, Dst: dst, Port: 2049}.WithDefaults()
}

func route(dst string) netfault.Spec {
	return netfault.Spec{Kind: netfault.KindUnreachable, Dst: dst}.WithDefaults()
}

func TestDirectRouteGetsReaper(t *testing.T) {
	clk := clock.NewFake(t0)
	inj := clienttest.New(clk)
	var got []string
	d := NewDirect(DirectOptions{Injector: inj, Clock: clk, Reaper: func(id, netns string, _, at time.Time) (int, error) {
		got = append(got, fmt.Sprintf("%s|%s|%s", id, netns, at.Format(time.RFC3339)))
		return 99, nil
	}})
	spec := route("10.0.0.12")
	spec.Netns = "labns"
	a, err := d.Apply(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s|labns|%s", a.ID, t0.Add(netfault.DefaultLifetime).Format(time.RFC3339))
	if len(got) != 1 || got[0] != want || !strings.Contains(strings.Join(a.Notes, " "), "reaper process 99") {
		t.Fatalf("reaper calls %v (want %s), notes %v", got, want, a.Notes)
	}
	// Rules expire in the kernel: no reaper.
	if _, err := d.Apply(context.Background(), rule("10.0.0.5")); err != nil || len(got) != 1 {
		t.Fatalf("rule apply: %v, reaper calls %d", err, len(got))
	}
}

// One apply goes to the injector once: no plan rendered beside it, the
// rules returned are the ones applied, with the fault's ID.
func TestDirectApplyRendersOnce(t *testing.T) {
	inj := clienttest.New(clock.NewFake(t0))
	d := NewDirect(DirectOptions{Injector: inj})
	f, err := d.Apply(context.Background(), rule("10.0.0.5"))
	if err != nil {
		t.Fatal(err)
	}
	if inj.Calls("Plan") != 0 || inj.Calls("Apply") != 1 {
		t.Fatalf("injector calls: Plan %d, Apply %d; want 0 and 1", inj.Calls("Plan"), inj.Calls("Apply"))
	}
	if len(f.Rules) != 1 || !strings.Contains(f.Rules[0], "nfslab:"+f.ID) || len(f.Notes) != 1 {
		t.Fatalf("applied fault %s: rules %q, notes %q", f.ID, f.Rules, f.Notes)
	}
}

func TestDirectUndoesRouteWhenReaperFails(t *testing.T) {
	inj := clienttest.New(clock.NewFake(t0))
	d := NewDirect(DirectOptions{Injector: inj, Reaper: func(string, string, time.Time, time.Time) (int, error) {
		return 0, errors.New("fork: resource temporarily unavailable")
	}})
	_, err := d.Apply(context.Background(), route("10.0.0.12"))
	if err == nil || !strings.Contains(err.Error(), "reaper") {
		t.Fatalf("apply: %v, want reaper error", err)
	}
	if inj.Total() != 0 {
		t.Fatal("route left without a reaper")
	}
}

// directWithShortFault is a Direct client on a fake clock with one drop to
// 10.0.0.5 that expires 2 s after t0.
func directWithShortFault(t *testing.T) (*Direct, *clienttest.Injector, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	inj := clienttest.New(clk)
	d := NewDirect(DirectOptions{Injector: inj, Clock: clk})
	s := rule("10.0.0.5")
	s.For = 2 * time.Second
	if _, err := d.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return d, inj, clk
}

func TestDirectSweepsExpiredBeforeListAndHeal(t *testing.T) {
	d, inj, clk := directWithShortFault(t)
	ctx := context.Background()
	long, _ := d.Apply(ctx, rule("10.0.0.6"))
	clk.Advance(3 * time.Second)
	fs, err := d.List(ctx, "")
	if err != nil || len(fs) != 1 || fs[0].ID != long.ID {
		t.Fatalf("list after expiry = %+v, %v; want only %s", fs, err, long.ID)
	}
	if err := d.Heal(ctx, "", "nope"); !errors.Is(err, netfault.ErrNotFound) {
		t.Fatalf("heal unknown: %v", err)
	}
	before := inj.Calls("Apply")
	_, err = d.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Prob: 1.5}.WithDefaults())
	if !errors.Is(err, netfault.ErrInvalid) || inj.Calls("Apply") != before {
		t.Fatalf("invalid apply: %v", err)
	}
}

// A List that finds nothing to sweep is one scan: a scenario lists every
// second, and each scan costs iptables commands.
func TestDirectListSweepsOnlyWhenSomethingExpired(t *testing.T) {
	d, inj, clk := directWithShortFault(t)
	ctx := context.Background()
	for range 3 {
		if fs, err := d.List(ctx, ""); err != nil || len(fs) != 1 {
			t.Fatalf("list = %+v, %v", fs, err)
		}
	}
	if n := inj.Calls("Sweep"); n != 0 || inj.Calls("List") != 3 {
		t.Fatalf("3 lists of a live fault: %d sweeps, %d lists; want 0 and 3", n, inj.Calls("List"))
	}
	clk.Advance(2 * time.Second)
	if fs, err := d.List(ctx, ""); err != nil || len(fs) != 0 {
		t.Fatalf("list at expiry = %+v, %v; want none", fs, err)
	}
	if n := inj.Calls("Sweep"); n != 1 || inj.Calls("List") != 5 {
		t.Fatalf("list at expiry: %d sweeps, %d lists; want 1 and 5 (list, sweep, list)", n, inj.Calls("List"))
	}
}

func TestAutoPicksDirectWithoutDaemon(t *testing.T) {
	dir, _ := os.MkdirTemp("", "nfsla-")
	defer os.RemoveAll(dir)
	inj := clienttest.New(clock.NewFake(t0))
	factory := func() (netfault.Injector, error) { return inj, nil }
	ctx := context.Background()
	// No socket at all.
	none := filepath.Join(dir, "none.sock")
	c, err := Auto(ctx, none, false, factory, DirectOptions{})
	if err != nil || c.Mode() != "direct" {
		t.Fatalf("no socket: %v, %v", c, err)
	}
	// A socket the user named must answer: no fault meant for another
	// machine lands on this one.
	if c, err := Auto(ctx, none, true, factory, DirectOptions{}); !errors.Is(err, ErrNoDaemon) || c != nil || !strings.Contains(err.Error(), none) {
		t.Fatalf("required socket absent: %v, %v", c, err)
	}
	// A stale socket left by a killed daemon.
	stale := filepath.Join(dir, "stale.sock")
	l, _ := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	l.SetUnlinkOnClose(false)
	l.Close()
	c, err = Auto(ctx, stale, false, factory, DirectOptions{})
	if err != nil || c.Mode() != "direct" {
		t.Fatalf("stale socket: %v, %v", c, err)
	}
	if _, err := Auto(ctx, stale, true, factory, DirectOptions{}); !errors.Is(err, ErrNoDaemon) || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("required socket stale: %v", err)
	}
	// A daemon that answers (pkg/daemon's tests run this client against
	// the real one).
	live := filepath.Join(dir, "live.sock")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(daemonapi.Health{PID: os.Getpid()})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	c, err = Auto(ctx, live, true, func() (netfault.Injector, error) { return nil, errors.New("must not be called") }, DirectOptions{})
	if err != nil || c.Mode() != "daemon" {
		t.Fatalf("live daemon: %v, %v", c, err)
	}
}

func TestVerifyThroughClient(t *testing.T) {
	clk := clock.NewFake(t0)
	inj := clienttest.New(clk)
	inj.Findings = []netfault.Finding{{Cause: "no-connection", Detail: "no TCP connection to 10.0.0.5:2049"}}
	d := NewDirect(DirectOptions{Injector: inj, Clock: clk})
	a, err := d.Apply(context.Background(), rule("10.0.0.5"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan netfault.Verdict)
	go func() {
		v, err := netfault.Verify(context.Background(), d, clk, "", a.ID, 3*time.Second, time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- v
	}()
	for {
		select {
		case v := <-done:
			if v.Bit || len(v.Findings) != 1 || v.Findings[0].Cause != "no-connection" {
				t.Fatalf("verdict %+v", v)
			}
			return
		default:
		}
		if clk.Waiters() > 0 {
			clk.Advance(time.Second)
		}
		time.Sleep(time.Millisecond)
	}
}
