package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/client"
	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/netfault"
)

func faultPrivGuard(t *testing.T) {
	t.Helper()
	privtest.Root(t)
	privtest.Short(t)
	privtest.Tools(t, "ip", "iptables", "iptables-save", "ip6tables-save")
}

// faultLab is a socket and a state directory for one privileged test; the state
// directory reaches the daemon and reapers through the environment. A
// command meant for the direct path says so with --socket= (a socket
// named with --socket must answer).
type faultLab struct {
	dir, sock string
}

func newFaultLab(t *testing.T) *faultLab {
	t.Helper()
	dir, err := os.MkdirTemp("", "nfslt-dmn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Setenv(StateDirEnv, filepath.Join(dir, "state"))
	return &faultLab{dir: dir, sock: filepath.Join(dir, "run", "nfslab.sock")}
}

type faultDaemonProc struct {
	cmd  *exec.Cmd
	log  *faultLogBuffer
	done chan error
}

// faultLogBuffer is the daemon's log, written by exec's copier while the test
// reads it.
type faultLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *faultLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *faultLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs `nfslab daemon` as a child process (this test binary
// acting as nfslab) and waits until it answers.
func (l *faultLab) startDaemon(t *testing.T, args ...string) *faultDaemonProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := &faultDaemonProc{log: &faultLogBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(self, append([]string{"daemon", "--socket", l.sock, "--log-level", "debug", "--host-netns=false"}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Signal(syscall.SIGKILL) // our child, by PID
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	c := client.NewDaemon(l.sock)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Ping(context.Background()); err == nil {
			return d
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("daemon exited at start: %v\n%s", err, d.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not answer within 10s:\n%s", d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for the daemon to exit and returns its exit status.
func (d *faultDaemonProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-d.done:
		d.done <- err
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("daemon did not exit within %v", timeout)
		return -1
	}
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, code := runCLI(t, context.Background(), args...)
	if code != 0 {
		t.Fatalf("nfslab %s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr)
	}
	return out
}

// nfslabObjects lists every nfslab rule, chain, jump and route in ns.
func faultObjects(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		s, err := testnet.Exec(context.Background(), ns, save)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(s), "\n") {
			if strings.Contains(strings.ToLower(line), "nfslab") {
				out = append(out, save+": "+line)
			}
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		s, err := cmdrun.Output(context.Background(), "ip", fam, "-n", ns, "route", "show", "table", "all", "proto", strconv.Itoa(netfault.RouteProtocol))
		if err != nil {
			t.Fatal(err)
		}
		if r := strings.TrimSpace(string(s)); r != "" {
			out = append(out, "route: "+r)
		}
	}
	return out
}

var faultReaperRE = regexp.MustCompile(`reaper process (\d+)`)

// killReaper ends a reaper the direct path started for this test, by PID.
func faultKillReaper(t *testing.T, out string) {
	m := faultReaperRE.FindStringSubmatch(out)
	if m == nil {
		return
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { _ = unix.Kill(pid, syscall.SIGKILL) })
}

// TestPrivDaemonCrashSafety: three faults applied through the daemon, the
// daemon killed with SIGKILL, then `nfslab heal --all --netns X` in-process
// (what it does when the default socket is stale: pkg/client tests that
// choice) leaves no nfslab rule, chain or route; a fresh daemon start also
// sweeps what the direct path left.
func TestPrivDaemonCrashSafety(t *testing.T) {
	faultPrivGuard(t)
	p := testnet.NewPair(t, "nfslt-dmn")
	ns := p.Client
	l := newFaultLab(t)
	d := l.startDaemon(t, "--netns", ns)

	for _, args := range [][]string{
		{"drop", "--dst", p.ServerV4.String(), "--no-verify"},
		{"reject", "--dst", p.ServerV6.String(), "--port", "80", "--proto", "tcp", "--dir", "both", "--no-verify"},
		{"unreachable", "--dst", "10.250.0.0/24", "--type", "prohibit"},
	} {
		out := mustCLI(t, append(args, "--socket", l.sock, "--netns", ns)...)
		if !strings.Contains(out, "via daemon") {
			t.Fatalf("not applied through the daemon:\n%s", out)
		}
	}
	if objs := faultObjects(t, ns); len(objs) < 3 {
		t.Fatalf("expected rules and a route, found:\n%s", strings.Join(objs, "\n"))
	}

	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.wait(t, 10*time.Second)
	// Named, the stale socket is an error, not a reason to act here.
	if _, stderr, code := runCLI(t, context.Background(), "heal", "--all", "--netns", ns, "--socket", l.sock); code == 0 || !strings.Contains(stderr, "no daemon answers at "+l.sock) {
		t.Fatalf("heal --all on the dead daemon's named socket: exit %d %s", code, stderr)
	}

	out := mustCLI(t, "heal", "--all", "--netns", ns, "--socket=")
	if !strings.Contains(out, "healed 3 fault(s)") {
		t.Fatalf("heal --all without daemon:\n%s", out)
	}
	if objs := faultObjects(t, ns); len(objs) != 0 {
		t.Fatalf("nfslab objects left after heal --all:\n%s", strings.Join(objs, "\n"))
	}

	// Faults applied directly (no daemon), then a fresh daemon start.
	out = mustCLI(t, "drop", "--dst", p.ServerV4.String(), "--prob", "0.5", "--no-verify", "--netns", ns, "--socket=")
	if !strings.Contains(out, "via direct") {
		t.Fatalf("expected the direct path:\n%s", out)
	}
	out = mustCLI(t, "unreachable", "--dst", "10.251.0.0/24", "--netns", ns, "--socket=")
	faultKillReaper(t, out)
	if objs := faultObjects(t, ns); len(objs) == 0 {
		t.Fatal("direct faults not applied")
	}
	d2 := l.startDaemon(t, "--netns", ns)
	if objs := faultObjects(t, ns); len(objs) != 0 {
		t.Fatalf("fresh daemon start left:\n%s", strings.Join(objs, "\n"))
	}
	if !strings.Contains(d2.log.String(), "sweep-removed") {
		t.Errorf("daemon did not report the leftovers it removed:\n%s", d2.log)
	}
	_ = d2.cmd.Process.Signal(syscall.SIGTERM)
	if code := d2.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM", code)
	}
}

// TestPrivDaemonFaultBitesAndSIGTERMHeals: a drop through the daemon makes
// a TCP connect time out, the daemon reports its first hit, and SIGTERM
// heals it so that the connect works again.
func TestPrivDaemonFaultBitesAndSIGTERMHeals(t *testing.T) {
	faultPrivGuard(t)
	p := testnet.NewPair(t, "nfslt-dmn")
	srv := testnet.ListenTCP(t, p.Server, netip.AddrPortFrom(p.ServerV4, 0))
	if errno, err := testnet.Dial(p.Client, srv.Addr, 2*time.Second); errno != 0 || err != nil {
		t.Fatalf("connect before the fault: %v %v", errno, err)
	}
	l := newFaultLab(t)
	d := l.startDaemon(t, "--netns", p.Client, "--verify-window", "5s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := client.NewDaemon(l.sock).EventsSince(ctx, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "drop", "--dst", p.ServerV4.String(), "--port", strconv.Itoa(int(srv.Addr.Port())),
		"--netns", p.Client, "--socket", l.sock, "--no-verify", "--label", "bite test")
	if errno, err := testnet.Dial(p.Client, srv.Addr, time.Second); errno != unix.ETIMEDOUT {
		t.Fatalf("connect under a full drop: errno %v, err %v; want a timeout\n%s", errno, err, out)
	}
	var fs []netfault.Fault
	if err := json.Unmarshal([]byte(mustCLI(t, "status", "--json", "--netns", p.Client, "--socket", l.sock)), &fs); err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Packets == 0 || fs[0].Spec.Label != "bite test" {
		t.Fatalf("status after traffic: %+v", fs)
	}
	deadline := time.After(10 * time.Second)
	for hit := false; !hit; {
		select {
		case e := <-events:
			if e.Type == daemonapi.EventFaultFirstHit && e.ID == fs[0].ID && e.Packets > 0 {
				hit = true
			}
			if e.Type == daemonapi.EventFaultMatchedNothing {
				t.Fatalf("daemon says the fault matched nothing: %+v", e)
			}
		case <-deadline:
			t.Fatal("no fault-first-hit event from the daemon")
		}
	}
	body := faultMetrics(t, l.sock)
	// Labels come sorted by name: id is not the first.
	if !regexp.MustCompile(`(?m)^nfslab_fault_packets_total\{[^}]*\bid="` + regexp.QuoteMeta(fs[0].ID) + `"`).MatchString(body) {
		t.Errorf("metrics lack the fault's packet counter:\n%s", body)
	}

	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM", code)
	}
	if objs := faultObjects(t, p.Client); len(objs) != 0 {
		t.Fatalf("SIGTERM left:\n%s", strings.Join(objs, "\n"))
	}
	if errno, err := testnet.Dial(p.Client, srv.Addr, 2*time.Second); errno != 0 || err != nil {
		t.Fatalf("connect after the daemon healed: %v %v", errno, err)
	}
}

func faultMetrics(t *testing.T, sock string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://nfslab/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestPrivDaemonConcurrency: 50 parallel drops and 25 heals against the
// daemon leave a state on which `status` and iptables-save agree.
func TestPrivDaemonConcurrency(t *testing.T) {
	faultPrivGuard(t)
	ns := testnet.RandomName("nfslt-dmn-x")
	testnet.NewNetns(t, ns)
	l := newFaultLab(t)
	l.startDaemon(t, "--netns", ns)
	c := client.NewDaemon(l.sock)
	defer c.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := netfault.Spec{Kind: netfault.KindDrop, Dst: fmt.Sprintf("10.77.%d.1", i), Port: 2049, Netns: ns}.WithDefaults()
			a, err := c.Apply(ctx, s)
			if err != nil {
				errs <- err
				return
			}
			if i%2 == 0 {
				if err := c.Heal(ctx, ns, a.ID); err != nil {
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
	var fs []netfault.Fault
	if err := json.Unmarshal([]byte(mustCLI(t, "status", "--json", "--netns", ns, "--socket", l.sock)), &fs); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, f := range fs {
		listed = append(listed, f.ID)
	}
	sort.Strings(listed)
	save := testnet.MustExec(t, ns, "iptables-save")
	var inKernel []string
	for _, m := range regexp.MustCompile(`nfslab:([0-9a-f]+)`).FindAllStringSubmatch(save, -1) {
		inKernel = append(inKernel, m[1])
	}
	sort.Strings(inKernel)
	if len(listed) != 25 || strings.Join(listed, ",") != strings.Join(inKernel, ",") {
		t.Fatalf("status lists %d faults %v, iptables-save has %d %v", len(listed), listed, len(inKernel), inKernel)
	}
	out := mustCLI(t, "heal", "--all", "--netns", ns, "--socket", l.sock)
	if !strings.Contains(out, "healed 25 fault(s)") {
		t.Fatalf("heal --all: %s", out)
	}
	if objs := faultObjects(t, ns); len(objs) != 0 {
		t.Fatalf("left after heal --all:\n%s", strings.Join(objs, "\n"))
	}
}

// TestPrivDirectRouteReaperExpires: without a daemon a route has no kernel
// expiry, so the direct path's reaper process removes it on time.
func TestPrivDirectRouteReaperExpires(t *testing.T) {
	faultPrivGuard(t)
	ns := testnet.RandomName("nfslt-dmn-r")
	testnet.NewNetns(t, ns)
	newFaultLab(t) // its state directory
	out := mustCLI(t, "unreachable", "--dst", "10.252.0.0/24", "--for", "2s", "--netns", ns, "--socket=")
	faultKillReaper(t, out)
	m := faultReaperRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no reaper reported:\n%s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	if objs := faultObjects(t, ns); len(objs) != 1 {
		t.Fatalf("route not applied: %v", objs)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(faultObjects(t, ns)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("route still there 15s after a 2s lifetime: %v", faultObjects(t, ns))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The reaper was started by the in-process CLI, which reaps it.
	for unix.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if unix.Kill(pid, 0) == nil {
		t.Fatalf("reaper %d still running after healing", pid)
	}
}

// TestDaemonRefusesForeignSocket: a socket path owned by another user is
// bad input (exit 2) and is left alone.
func TestDaemonRefusesForeignSocket(t *testing.T) {
	privtest.Root(t)
	dir, err := os.MkdirTemp("", "nfslt-dmn-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "d.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sock, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCLI(t, context.Background(), "daemon", "--socket", sock, "--host-netns=false")
	if code != 2 || !strings.Contains(stderr, "owned by uid 65534") || !strings.Contains(stderr, sock) {
		t.Fatalf("exit %d, stderr %s; want 2 naming the owner and the path", code, stderr)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Fatalf("foreign socket path was touched: %v", err)
	}
}

// faultReaperPID returns the PID of the reaper the direct path reported.
func faultReaperPID(t *testing.T, out string) int {
	t.Helper()
	m := faultReaperRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no reaper reported:\n%s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// faultProcRunning reports whether pid runs (a zombie does not).
func faultProcRunning(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

var faultAppliedRE = regexp.MustCompile(`applied unreachable fault ([0-9a-f]{8})`)

// TestPrivDirectReapersEndWithTheirFaults: 30 apply/heal cycles of an IPv6
// route on one prefix through the direct path leave no reaper running
// (the defect left 15), and a reaper of an earlier fault on the prefix
// leaves the current one alone.
func TestPrivDirectReapersEndWithTheirFaults(t *testing.T) {
	faultPrivGuard(t)
	ns := testnet.RandomName("nfslt-dmn-rp")
	testnet.NewNetns(t, ns)
	newFaultLab(t) // its state directory
	apply := func() (id string, pid int) {
		out := mustCLI(t, "unreachable", "--dst", "fd00:73::/64", "--for", "2m", "--netns", ns, "--socket=")
		faultKillReaper(t, out)
		m := faultAppliedRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no fault ID in:\n%s", out)
		}
		return m[1], faultReaperPID(t, out)
	}
	var pids []int
	ids := map[string]bool{}
	for range 30 {
		id, pid := apply()
		if ids[id] {
			t.Fatalf("ID %s reused on the prefix", id)
		}
		ids[id] = true
		pids = append(pids, pid)
		mustCLI(t, "heal", id, "--netns", ns, "--socket=")
	}
	running := func() int {
		n := 0
		for _, pid := range pids {
			if faultProcRunning(pid) {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for running() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := running(); n != 0 {
		t.Fatalf("%d of 30 reapers still run after their faults were healed", n)
	}
	t.Logf("30 apply/heal cycles: %d reapers running", running())
	if objs := faultObjects(t, ns); len(objs) != 0 {
		t.Fatalf("left after 30 cycles: %v", objs)
	}

	// An earlier fault's reaper, started late (as if it had survived),
	// must not touch the current fault on the same prefix.
	old, oldPID := apply()
	var fs []netfault.Fault
	if err := json.Unmarshal([]byte(mustCLI(t, "status", "--json", "--netns", ns, "--socket=")), &fs); err != nil || len(fs) != 1 {
		t.Fatalf("status: %v %+v", err, fs)
	}
	oldCreated := fs[0].Created
	mustCLI(t, "heal", old, "--netns", ns, "--socket=")
	cur, _ := apply()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{old, cur} { // cur: as if the IDs had collided
		cmd := exec.Command(self, client.ExpireCommand, "--id", id, "--created", oldCreated.Format(time.RFC3339Nano),
			"--netns", ns, "--at", time.Now().Format(time.RFC3339Nano))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("old reaper for %s: %v\n%s", id, err, out)
		}
	}
	objs := faultObjects(t, ns)
	var tag uint64
	fmt.Sscanf(cur, "%08x", &tag)
	if len(objs) != 1 || !strings.Contains(objs[0], fmt.Sprintf("window %d", tag)) {
		t.Fatalf("an old reaper removed the current fault %s: %v", cur, objs)
	}
	// Heal signals the reaper (or, if it had not yet recorded itself, the
	// reaper finds its record gone within 5 s): allow it that long to end.
	for deadline := time.Now().Add(10 * time.Second); faultProcRunning(oldPID) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if faultProcRunning(oldPID) {
		t.Fatalf("reaper %d of healed fault %s still runs 10 s after the heal", oldPID, old)
	}
	mustCLI(t, "heal", "--all", "--netns", ns, "--socket=")
}

// TestPrivHealAllInUnshareKeepsOtherRecords: a fault applied inside one
// namespace without --netns keeps its record (label, creation time) when
// `heal --all` runs inside `unshare -n` with the same state directory.
func TestPrivHealAllInUnshareKeepsOtherRecords(t *testing.T) {
	faultPrivGuard(t)
	privtest.Tools(t, "unshare")
	ns := testnet.RandomName("nfslt-dmn-us")
	testnet.NewNetns(t, ns)
	newFaultLab(t) // its state directory
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	nfslab := func(wrap []string, args ...string) string {
		t.Helper()
		argv := append(append(wrap, self), append(args, "--socket=")...)
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
		return string(out)
	}
	inNS := []string{"ip", "netns", "exec", ns}
	nfslab(inNS, "drop", "--dst", "10.0.0.5", "--no-verify", "--label", "keep me")
	t.Cleanup(func() { nfslab(inNS, "heal", "--all", "--faults-only") })
	out := nfslab([]string{"unshare", "-n"}, "heal", "--all", "--faults-only")
	if !strings.Contains(out, "nothing to heal") {
		t.Fatalf("heal --all in a fresh namespace: %s", out)
	}
	var fs []netfault.Fault
	if err := json.Unmarshal([]byte(nfslab(inNS, "status", "--json")), &fs); err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Spec.Label != "keep me" || fs[0].Created.IsZero() {
		t.Fatalf("the fault lost its record to heal --all in another namespace: %+v", fs)
	}
}
