package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/client"
	"github.com/nfslab/nfslab/pkg/client/clienttest"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/daemon"
	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/netfault"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	srv    *daemon.Server
	inj    *clienttest.Injector
	clk    *clock.Fake
	cli    *client.Daemon
	socket string
}

// shortDir returns a temporary directory with a path short enough for a
// unix socket (108 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "nfsld-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func start(t *testing.T, opts daemon.Options) *env {
	t.Helper()
	clk := clock.NewFake(t0)
	inj := clienttest.New(clk)
	if opts.Injector == nil {
		opts.Injector = inj
	}
	opts.Clock = clk
	if opts.VerifyWindow == 0 {
		opts.VerifyWindow = -1
	}
	srv, err := daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortDir(t), "run", "nfslab.sock")
	ln, err := daemon.Listen(sock, daemon.ListenOptions{Group: os.Getegid()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if _, err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	cli := client.NewDaemon(sock)
	t.Cleanup(func() { cli.Close() })
	return &env{srv: srv, inj: inj, clk: clk, cli: cli, socket: sock}
}

func drop(dst string) netfault.Spec {
	return netfault.Spec{Kind: netfault.KindDrop, Dst: dst, Port: 2049}.WithDefaults()
}

// next waits for the next event of type typ.
func next(t *testing.T, ch <-chan daemonapi.Event, typ string) daemonapi.Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("event stream ended before %s", typ)
			}
			if e.Type == typ {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event within 5s", typ)
		}
	}
}

func TestApplyListHealOverSocket(t *testing.T) {
	e := start(t, daemon.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := e.cli.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.cli.Apply(ctx, drop("10.0.0.5"))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || len(a.Rules) != 1 || !a.Expires.Equal(t0.Add(netfault.DefaultLifetime)) {
		t.Fatalf("apply returned %+v", a)
	}
	// Rendered once, by the injector's Apply: no plan beside it, the
	// fault's own ID in the rule.
	if e.inj.Calls("Plan") != 0 || !strings.Contains(a.Rules[0], "nfslab:"+a.ID) || len(a.Notes) == 0 {
		t.Fatalf("apply made %d plan(s); rules %q, notes %q", e.inj.Calls("Plan"), a.Rules, a.Notes)
	}
	if ev := next(t, events, daemonapi.EventFaultApplied); ev.ID != a.ID || ev.Fault == nil {
		t.Fatalf("applied event %+v", ev)
	}
	if err := e.inj.Hit("", a.ID, 7); err != nil {
		t.Fatal(err)
	}
	fs, err := e.cli.List(ctx, "")
	if err != nil || len(fs) != 1 || fs[0].Packets != 7 || fs[0].Bytes != 700 {
		t.Fatalf("list = %+v, %v", fs, err)
	}
	if err := e.cli.Heal(ctx, "", a.ID); err != nil {
		t.Fatal(err)
	}
	next(t, events, daemonapi.EventFaultHealed)
	err = e.cli.Heal(ctx, "", a.ID)
	if !errors.Is(err, netfault.ErrNotFound) || !strings.Contains(err.Error(), a.ID) {
		t.Fatalf("second heal: %v, want ErrNotFound naming %s", err, a.ID)
	}
	if e.inj.Total() != 0 {
		t.Fatalf("fake still has %d faults", e.inj.Total())
	}
}

func TestBadSpecIs400AndChangesNothing(t *testing.T) {
	e := start(t, daemon.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		spec netfault.Spec
		want string
	}{
		{netfault.Spec{Kind: "drop", Dst: "10.0.0.5", Prob: 1.5}, "1.5"},
		{netfault.Spec{Kind: "drop", Dst: "not-an-ip"}, "not-an-ip"},
		{netfault.Spec{Kind: "drop", Dst: "10.0.0.5", Port: 70000}, "70000"},
		{netfault.Spec{Kind: "drop", Dst: "10.0.0.5", Proto: "sctp"}, "sctp"},
		{netfault.Spec{Kind: "drop", Dst: "10.0.0.5", For: -3 * time.Second}, "-3s"},
		{netfault.Spec{Kind: "unreachable", Dst: "0.0.0.0/0"}, "0.0.0.0/0"},
		{netfault.Spec{Kind: "unreachable", Dst: "::/0"}, "::/0"},
		{netfault.Spec{Kind: "drop", Dst: "10.0.0.5", Netns: ".."}, `".."`},
		{netfault.Spec{Kind: "unreachable", Dst: "fe80::1%lo"}, "fe80::1%lo"},
	} {
		_, err := e.cli.Apply(ctx, tc.spec)
		if !errors.Is(err, netfault.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("apply %+v: %v, want ErrInvalid naming %s", tc.spec, err, tc.want)
		}
		if _, err := e.cli.Plan(ctx, tc.spec); !errors.Is(err, netfault.ErrInvalid) {
			t.Errorf("plan %+v: %v, want ErrInvalid", tc.spec, err)
		}
	}
	if n := e.inj.Calls("Apply"); n != 0 {
		t.Fatalf("injector Apply called %d times for invalid specs", n)
	}
	// Unknown JSON fields are bad input too.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.socket)
	}}}
	resp, err := hc.Post("http://x/v1/faults", "application/json", strings.NewReader(`{"kind":"drop","dst":"10.0.0.5","probability":0.5}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "probability") {
		t.Fatalf("unknown field: %d %s", resp.StatusCode, body)
	}
	// So is anything after the JSON value, on every path that reads a body.
	for _, path := range []string{"/v1/faults", "/v1/faults/plan"} {
		for body, want := range map[string]string{
			`{"kind":"drop","dst":"10.0.0.5"} trailing`:                        "trailing",
			`{"kind":"drop","dst":"10.0.0.5"}{"kind":"drop","dst":"10.0.0.6"}`: "10.0.0.6",
		} {
			resp, err := hc.Post("http://x"+path, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || !strings.Contains(string(got), "after the JSON value") || !strings.Contains(string(got), want) {
				t.Errorf("POST %s %s: %d %s, want 400 naming the trailing data", path, body, resp.StatusCode, got)
			}
		}
	}
	// Trailing white space is not data.
	resp, err = hc.Post("http://x/v1/faults/plan", "application/json", strings.NewReader("{\"kind\":\"drop\",\"dst\":\"10.0.0.5\"}\n \n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("plan with a trailing newline: %d", resp.StatusCode)
	}
	if n := e.inj.Calls("Apply"); n != 0 || e.inj.Total() != 0 {
		t.Fatalf("bad bodies reached Apply %d times, %d faults", n, e.inj.Total())
	}
}

func TestPlanTouchesNothing(t *testing.T) {
	e := start(t, daemon.Options{})
	p, err := e.cli.Plan(context.Background(), drop("10.0.0.5"))
	if err != nil || len(p.Rules) != 1 || !strings.Contains(p.Rules[0], "10.0.0.5") {
		t.Fatalf("plan = %+v, %v", p, err)
	}
	if e.inj.Calls("Apply") != 0 {
		t.Fatal("plan applied something")
	}
}

func TestFaultExpiresOnDaemonTimer(t *testing.T) {
	e := start(t, daemon.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := e.cli.Events(ctx)
	spec := drop("10.0.0.5")
	spec.For = 2 * time.Second
	a, err := e.cli.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(1999 * time.Millisecond)
	if e.inj.Total() != 1 {
		t.Fatal("fault healed before its lifetime ended")
	}
	e.clk.Advance(time.Millisecond)
	ev := next(t, events, daemonapi.EventFaultExpired)
	if ev.ID != a.ID {
		t.Fatalf("expired event for %s, want %s", ev.ID, a.ID)
	}
	if e.inj.Total() != 0 {
		t.Fatal("expired fault still applied")
	}
}

// advanceUntil steps the fake clock by step until an event of typ arrives.
func advanceUntil(t *testing.T, e *env, ch <-chan daemonapi.Event, step time.Duration, typ string) daemonapi.Event {
	t.Helper()
	for i := 0; i < 100; i++ {
		// Wait for the watcher to block on its next poll (the expiry timer
		// is the other waiter).
		deadline := time.Now().Add(2 * time.Second)
		for e.clk.Waiters() < 2 && time.Now().Before(deadline) {
			select {
			case ev := <-ch:
				if ev.Type == typ {
					return ev
				}
			case <-time.After(time.Millisecond):
			}
		}
		e.clk.Advance(step)
	}
	return next(t, ch, typ)
}

func TestZeroHitWatcherReportsFindings(t *testing.T) {
	e := start(t, daemon.Options{VerifyWindow: 10 * time.Second, VerifyPoll: time.Second})
	e.inj.Findings = []netfault.Finding{{Cause: "nat-before-filter", Detail: "DNAT 127.0.0.1:2049 -> 10.88.0.2:2049", Fix: "use --match-original"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := e.cli.Events(ctx)
	a, err := e.cli.Apply(ctx, drop("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	ev := advanceUntil(t, e, events, time.Second, daemonapi.EventFaultMatchedNothing)
	if ev.ID != a.ID || len(ev.Findings) != 1 || ev.Findings[0].Cause != "nat-before-filter" {
		t.Fatalf("matched-nothing event %+v", ev)
	}
	if got := e.clk.Now().Sub(t0); got < 10*time.Second {
		t.Fatalf("reported after %v, before the 10s window ended", got)
	}
}

func TestZeroHitWatcherReportsFirstHit(t *testing.T) {
	e := start(t, daemon.Options{VerifyWindow: 10 * time.Second, VerifyPoll: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := e.cli.Events(ctx)
	a, err := e.cli.Apply(ctx, drop("10.0.0.5"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.inj.Hit("", a.ID, 3); err != nil {
		t.Fatal(err)
	}
	ev := advanceUntil(t, e, events, time.Second, daemonapi.EventFaultFirstHit)
	if ev.ID != a.ID || ev.Packets != 3 {
		t.Fatalf("first-hit event %+v", ev)
	}
}

func TestStartSweepsLeftovers(t *testing.T) {
	clk := clock.NewFake(t0)
	inj := clienttest.New(clk)
	ctx := context.Background()
	for _, ns := range []string{"", "", "labns"} {
		s := drop("10.0.0.9")
		s.Netns = ns
		if _, err := inj.Apply(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := daemon.New(daemon.Options{Injector: inj, Clock: clk, Namespaces: []string{"labns"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if inj.Total() != 0 {
		t.Fatalf("%d leftovers after start", inj.Total())
	}
	// The sweep is reported as events that a late subscriber can replay.
	sock := filepath.Join(shortDir(t), "s.sock")
	ln, err := daemon.Listen(sock, daemon.ListenOptions{Group: os.Getegid()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := client.NewDaemon(sock).EventsSince(cctx, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for range 2 {
		ev := next(t, ch, daemonapi.EventSweepRemoved)
		got[ev.Netns] = len(ev.IDs)
	}
	if got[""] != 2 || got["labns"] != 1 {
		t.Fatalf("sweep events %v, want 2 in host and 1 in labns", got)
	}
}

func TestShutdownHealsWhatItApplied(t *testing.T) {
	clk := clock.NewFake(t0)
	inj := clienttest.New(clk)
	ctx := context.Background()
	srv, err := daemon.New(daemon.Options{Injector: inj, Clock: clk, VerifyWindow: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortDir(t), "s.sock")
	ln, err := daemon.Listen(sock, daemon.ListenOptions{Group: os.Getegid()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- daemon.Run(runCtx, srv, ln) }()
	cli := client.NewDaemon(sock)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := cli.Ping(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("daemon did not answer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 3 {
		s := drop(fmt.Sprintf("10.0.0.%d", i+1))
		s.Netns = "labns"
		if _, err := cli.Apply(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// Someone else's fault (applied directly): not the daemon's to heal.
	other, _ := inj.Apply(ctx, drop("10.9.9.9"))
	stop() // what SIGTERM does in the daemon command
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(inj.Faults("labns")); n != 0 {
		t.Fatalf("%d faults left after shutdown", n)
	}
	if fs := inj.Faults(""); len(fs) != 1 || fs[0].ID != other.ID {
		t.Fatalf("shutdown touched a fault it did not apply: %+v", fs)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestConcurrentApplyAndHeal(t *testing.T) {
	e := start(t, daemon.Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := e.cli.Apply(ctx, drop(fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)))
			if err != nil {
				errs <- err
				return
			}
			if i%2 == 0 {
				if err := e.cli.Heal(ctx, "", a.ID); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	fs, err := e.cli.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 25 || e.inj.Total() != 25 {
		t.Fatalf("list has %d faults, injector %d; want 25", len(fs), e.inj.Total())
	}
	ids, err := e.cli.HealAll(ctx, "")
	if err != nil || len(ids) != 25 || e.inj.Total() != 0 {
		t.Fatalf("heal all: %d ids, %v; %d left", len(ids), err, e.inj.Total())
	}
}

func TestMetrics(t *testing.T) {
	e := start(t, daemon.Options{})
	ctx := context.Background()
	a, err := e.cli.Apply(ctx, drop("10.0.0.5"))
	if err != nil {
		t.Fatal(err)
	}
	_ = e.inj.Hit("", a.ID, 5)
	body := get(t, e.socket, "/metrics")
	for _, want := range []string{
		// Labels in the order client_golang writes them: sorted by name.
		fmt.Sprintf(`nfslab_fault_packets_total{dst="10.0.0.5",id="%s",kind="drop",netns="",port="2049"} 5`, a.ID),
		fmt.Sprintf(`nfslab_fault_bytes_total{dst="10.0.0.5",id="%s",kind="drop",netns="",port="2049"} 500`, a.ID),
		`nfslab_faults_active{kind="drop"} 1`,
		"# TYPE nfslab_fault_apply_seconds histogram",
		`nfslab_fault_apply_seconds_count 1`,
		`nfslab_fault_apply_seconds_bucket{le="+Inf"} 1`,
		`nfslab_events_total{type="fault-applied"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func get(t *testing.T, sock, path string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://x" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestHandleAndPublishHostOtherServices(t *testing.T) {
	e := start(t, daemon.Options{})
	e.srv.Handle("POST /v1/faultfs/echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.srv.Publish(daemonapi.Event{Type: "faultfs-applied", ID: "ffs1", Data: []byte(`{"path":"/x"}`)})
		io.WriteString(w, "ok")
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := e.cli.Events(ctx)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.socket)
	}}}
	resp, err := hc.Post("http://x/v1/faultfs/echo", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ev := next(t, events, "faultfs-applied")
	if ev.ID != "ffs1" || string(ev.Data) != `{"path":"/x"}` || ev.Seq == 0 {
		t.Fatalf("event %+v", ev)
	}
}

func nopInjector(t *testing.T) netfault.Injector {
	return clienttest.New(clock.NewFake(t0))
}

func TestHealFindsTrackedNamespace(t *testing.T) {
	e := start(t, daemon.Options{NoHostNamespace: true})
	ctx := context.Background()
	s := drop("10.0.0.5")
	s.Netns = "labns"
	a, err := e.cli.Apply(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	// `nfslab heal ID` without --netns asks for the host namespace.
	if err := e.cli.Heal(ctx, "", a.ID); err != nil {
		t.Fatalf("heal without namespace: %v", err)
	}
	if e.inj.Total() != 0 {
		t.Fatal("fault not healed")
	}
	if n := e.inj.Calls("HealAll"); n != 0 {
		t.Fatalf("daemon with NoHostNamespace swept something at start (%d HealAll calls)", n)
	}
}

// keeperInjector is a long-lived injector: it wants EnsureJumps called
// periodically and Close at exit.
type keeperInjector struct {
	*clienttest.Injector
	mu      sync.Mutex
	ensured map[string]int
	closed  int
}

func (k *keeperInjector) EnsureJumps(_ context.Context, netns string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ensured[netns]++
	return nil
}

func (k *keeperInjector) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed++
	return nil
}

func TestLongLivedInjectorJumpsKeptAndClosed(t *testing.T) {
	clk := clock.NewFake(t0)
	k := &keeperInjector{Injector: clienttest.New(clk), ensured: map[string]int{}}
	srv, err := daemon.New(daemon.Options{Injector: k, Clock: clk, Namespaces: []string{"lab"}, VerifyWindow: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		deadline := time.Now().Add(2 * time.Second)
		for clk.Waiters() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		clk.Advance(time.Second)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		k.mu.Lock()
		n, host := k.ensured["lab"], k.ensured[""]
		k.mu.Unlock()
		if n >= 2 && host >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("EnsureJumps called %d times for lab, %d for host; want every second", n, host)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k.closed != 1 {
		t.Fatalf("Close called %d times at shutdown, want 1", k.closed)
	}
}

// Delay and limit go over the socket as the same netfault.Spec: rates and
// sizes in tc's units, durations in ns; a bad rate is a 400 naming it.
func TestShapeFaultsOverSocket(t *testing.T) {
	e := start(t, daemon.Options{})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.socket)
	}}}
	for body, want := range map[string]int{
		`{"kind":"limit","dst":"10.0.0.5","port":2049,"proto":"tcp","dir":"out","rate":"1mbit","burst":"32kb"}`:                                  201,
		`{"kind":"delay","dst":"10.0.0.5","port":2049,"proto":"tcp","dir":"both","delay":200000000,"jitter":50000000,"correlation":25,"loss":1}`: 201,
		`{"kind":"limit","dst":"10.0.0.5","proto":"tcp","dir":"out","rate":"fast"}`:                                                              400,
		`{"kind":"delay","dst":"10.0.0.5","proto":"tcp","dir":"out","delay":1000000,"jitter":2000000}`:                                           400,
	} {
		resp, err := hc.Post("http://x/v1/faults", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d %s, want %d", body, resp.StatusCode, got, want)
		}
	}
	fs, err := e.cli.List(context.Background(), "")
	if err != nil || len(fs) != 2 {
		t.Fatalf("list: %+v %v", fs, err)
	}
	for _, f := range fs {
		if !f.Counted || (f.Spec.Kind == netfault.KindLimit && f.Spec.Rate != 1_000_000) || (f.Spec.Kind == netfault.KindDelay && f.Spec.Delay != 200*time.Millisecond) {
			t.Errorf("listed %+v", f)
		}
	}
}
