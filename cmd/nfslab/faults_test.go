package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/client"
	"github.com/nfslab/nfslab/pkg/client/clienttest"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// fakeLab is a direct client over an in-memory injector, counting how often
// the CLI opened it.
type fakeLab struct {
	inj    *clienttest.Injector
	opened atomic.Int32
	reaped atomic.Int32
}

func newFakeLab() *fakeLab {
	return &fakeLab{inj: clienttest.New(clock.Real{})}
}

func (l *fakeLab) ctx() context.Context {
	return withClientFactory(context.Background(), func(context.Context, *globals) (client.Client, error) {
		l.opened.Add(1)
		return client.NewDirect(client.DirectOptions{Injector: l.inj, Reaper: func(id, netns string, _, at time.Time) (int, error) {
			l.reaped.Add(1)
			return 4242, nil
		}}), nil
	})
}

func runCLI(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(&errb, "nfslab:", err)
		return out.String(), errb.String(), exitCode(err)
	}
	return out.String(), errb.String(), 0
}

func TestFaultBadInputExit2ChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"drop", "--dst", "10.0.0.5", "--prob", "1.5"}, "1.5"},
		{[]string{"drop", "--dst", "10.0.0.5", "--prob", "0"}, "probability 0"},
		{[]string{"drop", "--dst", "10.0.0.5", "--prob", "nan"}, "NaN"},
		{[]string{"drop", "--dst", "10.0.0.5", "--prob", "lots"}, "lots"},
		{[]string{"drop", "--dst", "10.0.0.5", "--port", "70000"}, "70000"},
		{[]string{"drop", "--dst", "not-an-ip"}, "not-an-ip"},
		{[]string{"drop", "--dst", "10.0.0.5", "--proto", "sctp"}, "sctp"},
		{[]string{"drop", "--dst", "10.0.0.5", "--for", "-3s"}, "-3s"},
		{[]string{"drop", "--dst", "10.0.0.5", "--for", "0s"}, "0s"},
		{[]string{"drop", "--dst", "10.0.0.5", "--dir", "sideways"}, "sideways"},
		{[]string{"drop", "--dst", "10.0.0.5", "--netns", "../etc"}, "../etc"},
		{[]string{"drop"}, "destination is required"},
		{[]string{"drop", "--dst", "10.0.0.5", "--verify-window", "-1s"}, "-1s"},
		{[]string{"drop", "--dst", "10.0.0.5", "extra"}, "extra"},
		{[]string{"reject", "--dst", "10.0.0.5", "--proto", "icmp"}, "icmp"},
		{[]string{"reject", "--dst", "10.0.0.5", "--prob", "0.5"}, "unknown flag: --prob"},
		{[]string{"unreachable", "--dst", "10.0.0.5", "--type", "wormhole"}, "wormhole"},
		{[]string{"unreachable", "--dst", "300.1.1.1"}, "300.1.1.1"},
		{[]string{"unreachable", "--dst", "10.0.0.5", "--for", "-3s"}, "-3s"},
		{[]string{"unreachable", "--dst", "0.0.0.0/0"}, "0.0.0.0/0"},
		{[]string{"unreachable", "--dst", "::/0", "--type", "blackhole"}, "::/0"},
		{[]string{"drop", "--dst", "0.0.0.0/0", "--port", "0"}, "0.0.0.0/0"},
		{[]string{"drop", "--dst", "10.0.0.5", "--netns", "."}, `"."`},
		{[]string{"reject", "--dst", "10.0.0.5", "--netns", ".."}, `".."`},
		{[]string{"unreachable", "--dst", "fe80::1%lo"}, "fe80::1%lo"},
		{[]string{"drop", "--dst", "fe80::1%3"}, `"3"`},
		{[]string{"drop", "--dst", "10.0.0.5", "--local-port", "65536"}, "local port 65536"},
		{[]string{"drop", "--dst", "10.0.0.5", "--local-port", "2049", "--match-original"}, "--match-original"},
		{[]string{"drop", "--dst", "0.0.0.0/0", "--local-port", "0", "--port", "0"}, "0.0.0.0/0"},
		{[]string{"delay", "--dst", "10.0.0.5", "--delay", "10ms", "--local-port", "2049"}, "unknown flag: --local-port"},
		{[]string{"unreachable", "--dst", "10.0.0.5", "--local-port", "2049"}, "unknown flag: --local-port"},
		{[]string{"expire", "--id", "deadbeef", "--at", "2026-01-01T00:00:00Z", "--created", "yesterday"}, "yesterday"},
		{[]string{"heal"}, "--all"},
		{[]string{"heal", "abc", "--all"}, "--all"},
		{[]string{"watch", "--interval", "0s"}, "interval"},
		{[]string{"delay", "--dst", "10.0.0.5"}, "needs --delay"},
		{[]string{"delay", "--dst", "10.0.0.5", "--delay", "10ms", "--jitter", "20ms"}, "jitter 20ms"},
		{[]string{"delay", "--dst", "10.0.0.5", "--delay", "10ms", "--loss", "150%"}, "loss 150%"},
		{[]string{"delay", "--dst", "10.0.0.5", "--delay", "10ms", "--loss", "lots"}, "lots"},
		{[]string{"delay", "--dst", "10.0.0.5", "--delay", "10ms", "--correlation", "25%"}, "needs --jitter"},
		{[]string{"delay", "--dst", "10.0.0.5", "--delay", "10ms", "--dir", "sideways"}, "sideways"},
		{[]string{"delay", "--dst", "10.0.0.5", "--delay", "10ms", "--rate", "1mbit"}, "unknown flag: --rate"},
		{[]string{"limit", "--dst", "10.0.0.5"}, "needs --rate"},
		{[]string{"limit", "--dst", "10.0.0.5", "--rate", "fast"}, "fast"},
		{[]string{"limit", "--dst", "10.0.0.5", "--rate", "1kbit"}, "below the minimum"},
		{[]string{"limit", "--dst", "10.0.0.5", "--rate", "1mbit", "--burst", "huge"}, "huge"},
		{[]string{"limit", "--dst", "0.0.0.0/0", "--port", "0", "--rate", "1mbit"}, "0.0.0.0/0"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			lab := newFakeLab()
			_, stderr, code := runCLI(t, lab.ctx(), tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("message does not name %q: %s", tc.want, stderr)
			}
			if lab.opened.Load() != 0 || lab.inj.Total() != 0 || lab.inj.Calls("Apply") != 0 {
				t.Errorf("bad input reached the injector (opened %d, faults %d)", lab.opened.Load(), lab.inj.Total())
			}
		})
	}
}

// delay and limit go through the same client as drop: applied with the
// shaping in tc's words, listed with their class counters.
func TestDelayAndLimitThroughTheClient(t *testing.T) {
	lab := newFakeLab()
	out, stderr, code := runCLI(t, lab.ctx(), "delay", "--dst", "10.0.0.5", "--delay", "200ms", "--jitter", "50ms", "--correlation", "25%", "--loss", "1", "--no-verify", "--for", "1m")
	if code != 0 || !strings.Contains(out, "applied delay fault") || !strings.Contains(out, "tcp 10.0.0.5:2049 out delay 200ms±50ms (25%) loss 1%") {
		t.Fatalf("delay: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = runCLI(t, lab.ctx(), "limit", "--dst", "10.0.0.5", "--rate", "1mbit", "--burst", "32kb", "--dir", "both", "--no-verify")
	if code != 0 || !strings.Contains(out, "tcp 10.0.0.5:2049 both rate 1mbit burst 32kb") {
		t.Fatalf("limit: exit %d\n%s%s", code, out, stderr)
	}
	if lab.reaped.Load() != 1 {
		t.Fatalf("reapers: %d, want 1 (the ingress half of the limit has no kernel expiry)", lab.reaped.Load())
	}
	out, _, code = runCLI(t, lab.ctx(), "status")
	if code != 0 || !strings.Contains(out, "delay") || !strings.Contains(out, "limit") || strings.Count(out, " 0 ") < 2 {
		t.Fatalf("status:\n%s", out)
	}
	out, _, code = runCLI(t, lab.ctx(), "delay", "--dst", "10.0.0.5", "--delay", "5ms", "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run: delay would create") {
		t.Fatalf("dry run:\n%s", out)
	}
}

// A default route is refused only where it would cut the machine off.
func TestDefaultRouteNeedsForceOrNetns(t *testing.T) {
	for _, args := range [][]string{
		{"unreachable", "--dst", "0.0.0.0/0", "--netns", "labns"},
		{"unreachable", "--dst", "::/0", "--force"},
	} {
		lab := newFakeLab()
		if out, stderr, code := runCLI(t, lab.ctx(), args...); code != 0 || lab.inj.Total() != 1 {
			t.Errorf("%v: exit %d, %d faults\n%s%s", args, code, lab.inj.Total(), out, stderr)
		}
	}
}

func TestDropPrintsIDLifetimeAndHealCommand(t *testing.T) {
	lab := newFakeLab()
	out, stderr, code := runCLI(t, lab.ctx(), "drop", "--dst", "192.168.24.110", "--prob", "0.8", "--for", "5m", "--netns", "labns", "--no-verify")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fs := lab.inj.Faults("labns")
	if len(fs) != 1 {
		t.Fatalf("%d faults applied, want 1", len(fs))
	}
	f := fs[0]
	if f.Spec.Prob != 0.8 || f.Spec.Port != 2049 || f.Spec.Proto != "tcp" || f.Spec.Dir != "out" || f.Spec.For != 5*time.Minute {
		t.Fatalf("spec %+v", f.Spec)
	}
	for _, want := range []string{"applied drop fault " + f.ID, "tcp 192.168.24.110:2049 out p=0.8", "lifetime: 5m0s", "nfslab heal " + f.ID + " --netns labns", "rule:", "--datestop"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDropWarnsWhenNothingMatches(t *testing.T) {
	lab := newFakeLab()
	lab.inj.Findings = []netfault.Finding{{Cause: "nat-before-filter", Detail: "nat OUTPUT DNAT 127.0.0.1:2049 -> 10.88.0.2:2049", Fix: "nfslab drop --dst 127.0.0.1 --match-original"}}
	out, _, code := runCLI(t, lab.ctx(), "drop", "--dst", "127.0.0.1", "--verify-window", "100ms")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"WARNING", "matched no packets in 100ms", "nat-before-filter: nat OUTPUT DNAT", "fix: nfslab drop --dst 127.0.0.1 --match-original"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDropReportsBites(t *testing.T) {
	lab := newFakeLab()
	done := make(chan struct{})
	go func() { // traffic arrives shortly after the rule
		defer close(done)
		for range 200 {
			if fs := lab.inj.Faults(""); len(fs) == 1 {
				_ = lab.inj.Hit("", fs[0].ID, 12)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	out, _, code := runCLI(t, lab.ctx(), "drop", "--dst", "10.0.0.5", "--verify-window", "3s")
	<-done
	if code != 0 || !strings.Contains(out, "bites: 12 packets after") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	lab := newFakeLab()
	out, _, code := runCLI(t, lab.ctx(), "reject", "--dst", "10.0.0.5", "--dry-run")
	if code != 0 || !strings.Contains(out, "REJECT") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	if lab.inj.Calls("Apply") != 0 {
		t.Fatal("dry run applied a fault")
	}
}

// On the server: --local-port names the server's port, and --port, the
// client's, then defaults to any (0) unless given.
func TestDropLocalPortOnServer(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		port, show string
	}{
		{[]string{"--local-port", "2049", "--dir", "both"}, "0", "tcp 10.0.0.5 local-port 2049 both"},
		{[]string{"--local-port", "2049", "--port", "800"}, "800", "tcp 10.0.0.5:800 local-port 2049 out"},
	} {
		lab := newFakeLab()
		args := append([]string{"drop", "--dst", "10.0.0.5", "--no-verify"}, tc.args...)
		out, _, code := runCLI(t, lab.ctx(), args...)
		if code != 0 || !strings.Contains(out, tc.show) {
			t.Fatalf("%q: exit %d, output lacks %q:\n%s", args, code, tc.show, out)
		}
		fs := lab.inj.Faults("")
		if len(fs) != 1 || fs[0].Spec.LocalPort != 2049 || strconv.Itoa(fs[0].Spec.Port) != tc.port {
			t.Fatalf("%q applied %+v, want local port 2049 and port %s", args, fs, tc.port)
		}
	}
}

func TestUnreachableStartsReaper(t *testing.T) {
	lab := newFakeLab()
	out, _, code := runCLI(t, lab.ctx(), "unreachable", "--dst", "10.0.0.12", "--type", "blackhole", "--for", "2m")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if lab.reaped.Load() != 1 || !strings.Contains(out, "reaper process 4242") || !strings.Contains(out, "blackhole route to 10.0.0.12") {
		t.Fatalf("reaper not started or not reported:\n%s", out)
	}
}

func TestHealUnknownIDExit1(t *testing.T) {
	lab := newFakeLab()
	_, stderr, code := runCLI(t, lab.ctx(), "heal", "deadbeef")
	if code != 1 || !strings.Contains(stderr, `"deadbeef"`) {
		t.Fatalf("exit %d, stderr %s; want 1 naming the ID", code, stderr)
	}
}

func TestHealStatusAndHealAll(t *testing.T) {
	lab := newFakeLab()
	ctx := lab.ctx()
	for _, dst := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		if _, e, code := runCLI(t, ctx, "drop", "--dst", dst, "--no-verify", "--label", "lab run"); code != 0 {
			t.Fatal(e)
		}
	}
	fs := lab.inj.Faults("")
	_ = lab.inj.Hit("", fs[0].ID, 3)
	out, _, code := runCLI(t, ctx, "status")
	if code != 0 || !strings.Contains(out, "PACKETS") || !strings.Contains(out, fs[0].ID) || !strings.Contains(out, "lab run") {
		t.Fatalf("status:\n%s", out)
	}
	out, _, _ = runCLI(t, ctx, "status", "--json")
	var got []netfault.Fault
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 3 || got[0].Packets != 3 {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	out, _, code = runCLI(t, ctx, "heal", fs[1].ID)
	if code != 0 || !strings.Contains(out, "healed "+fs[1].ID) || lab.inj.Total() != 2 {
		t.Fatalf("heal: %d %s", code, out)
	}
	out, _, code = runCLI(t, ctx, "watch", "--count", "2", "--interval", "10ms")
	if code != 0 || strings.Count(out, "2 fault(s)") != 2 || !strings.Contains(out, "+0") {
		t.Fatalf("watch: %d\n%s", code, out)
	}
	out, _, code = runCLI(t, ctx, "heal", "--all")
	if code != 0 || !strings.Contains(out, "healed 2 fault(s)") || lab.inj.Total() != 0 {
		t.Fatalf("heal --all: %d %s", code, out)
	}
}

// startDaemon runs `nfslab daemon --socket sock ARGS...` in-process with
// ctx's injected fakes and waits up to 5 s until it answers. The function
// it returns stops the daemon, as SIGTERM would, and gives its exit code
// (also when called again).
func startDaemon(t *testing.T, ctx context.Context, sock string, args ...string) (stop func() int) {
	t.Helper()
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		_, stderr, code := runCLI(t, dctx, append([]string{"daemon", "--socket", sock, "--log-level", "error"}, args...)...)
		if code != 0 {
			t.Logf("daemon: %s", stderr)
		}
		done <- code
	}()
	stop = sync.OnceValue(func() int { cancel(); return <-done })
	d := client.NewDaemon(sock)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := d.Ping(context.Background()); err == nil {
			return stop
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatal("daemon did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCLIThroughDaemon runs `nfslab daemon` in-process on a fake injector
// and drives it with the CLI's ordinary client selection.
func TestCLIThroughDaemon(t *testing.T) {
	dir, err := os.MkdirTemp("", "nfslc-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "d.sock")
	inj := clienttest.New(clock.Real{})
	stop := startDaemon(t, context.WithValue(context.Background(), daemonInjectorKey{}, netfault.Injector(inj)), sock)
	ctx := context.Background()
	out, stderr, code := runCLI(t, ctx, "drop", "--socket", sock, "--dst", "10.0.0.5", "--no-verify")
	if code != 0 || !strings.Contains(out, "via daemon") || !strings.Contains(out, "the daemon heals it") {
		t.Fatalf("drop via daemon: %d %s %s", code, out, stderr)
	}
	_, stderr, code = runCLI(t, ctx, "drop", "--socket", sock, "--dst", "10.0.0.5", "--port", "70000")
	if code != 2 || !strings.Contains(stderr, "70000") {
		t.Fatalf("bad port via daemon: %d %s", code, stderr)
	}
	_, stderr, code = runCLI(t, ctx, "heal", "--socket", sock, "nope")
	if code != 1 || !strings.Contains(stderr, `"nope"`) {
		t.Fatalf("unknown id via daemon: %d %s", code, stderr)
	}
	out, _, _ = runCLI(t, ctx, "status", "--socket", sock)
	if !strings.Contains(out, "tcp 10.0.0.5:2049 out") {
		t.Fatalf("status via daemon:\n%s", out)
	}
	if code := stop(); code != 0 {
		t.Fatalf("daemon exit %d", code)
	}
	if inj.Total() != 0 {
		t.Fatalf("daemon left %d faults at shutdown", inj.Total())
	}
}
