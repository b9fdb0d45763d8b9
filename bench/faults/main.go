package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/pkg/client"
	"github.com/nfslab/nfslab/pkg/client/clienttest"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/daemon"
	"github.com/nfslab/nfslab/pkg/netfault"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/faults:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 30, "iterations per path")
	nfslab := flag.String("nfslab", "", "nfslab binary to time end to end (optional)")
	inner := flag.String("inner", "", "internal: run the measurement inside this namespace")
	shape := flag.String("shape", "", "measure a shaping fault instead of a drop: delay (needs sch_netem, e.g. in the lab VM) or limit")
	flag.Parse()
	if *n < 1 || *n > 1000 {
		return fmt.Errorf("-n %d is out of range (1-1000)", *n)
	}
	if *shape != "" && *shape != string(netfault.KindDelay) && *shape != string(netfault.KindLimit) {
		return fmt.Errorf("-shape %q: want delay or limit", *shape)
	}
	if *inner != "" {
		if *shape != "" {
			return measureShape(*inner, *n, *shape)
		}
		return measure(*inner, *n, *nfslab)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (it creates a network namespace)")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "nfslt-bench-" + hex.EncodeToString(b)
	ctx := context.Background()
	if err := cmdrun.Run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	defer func() { _ = cmdrun.Run(context.Background(), "ip", "netns", "del", ns) }()
	if err := cmdrun.Run(ctx, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"netns", "exec", ns, self, "-inner", ns, "-n", fmt.Sprint(*n)}
	if *shape != "" {
		args = append(args, "-shape", *shape)
	}
	if *nfslab != "" {
		abs, err := filepath.Abs(*nfslab)
		if err != nil {
			return err
		}
		args = append(args, "-nfslab", abs)
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// sameNetns reports whether this process is in namespace ns.
func sameNetns(ns string) (bool, error) {
	var a, b syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &a); err != nil {
		return false, err
	}
	if err := syscall.Stat(filepath.Join("/run/netns", ns), &b); err != nil {
		return false, err
	}
	return a.Ino == b.Ino && a.Dev == b.Dev, nil
}

type series struct {
	name string
	d    []time.Duration
}

func (s *series) add(d time.Duration) { s.d = append(s.d, d) }

func (s *series) pct(p float64) time.Duration {
	x := slices.Clone(s.d)
	slices.Sort(x)
	return x[min(len(x)-1, int(p*float64(len(x))))]
}

func measure(ns string, n int, nfslab string) error {
	ok, err := sameNetns(ns)
	if err != nil || !ok {
		return fmt.Errorf("refusing to measure: not inside namespace %s (%v)", ns, err)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "nfslt-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	state := filepath.Join(dir, "state")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	mgr, err := netfault.NewManager(netfault.Options{Logger: logger, StateDir: state})
	if err != nil {
		return err
	}
	direct := client.NewDirect(client.DirectOptions{Injector: mgr})

	// The daemon runs a long-lived Manager, as `nfslab daemon` does.
	dmgr, err := netfault.NewManager(netfault.Options{Logger: logger, StateDir: state, LongLived: true})
	if err != nil {
		return err
	}
	srv, err := daemon.New(daemon.Options{Injector: dmgr, Logger: logger, VerifyWindow: -1})
	if err != nil {
		return err
	}
	sock := filepath.Join(dir, "nfslab.sock")
	ln, err := daemon.Listen(sock, daemon.ListenOptions{Logger: logger})
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown(context.Background())
	viaDaemon := client.NewDaemon(sock)
	if _, err := viaDaemon.Ping(ctx); err != nil {
		return err
	}

	spec := netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049}.WithDefaults()
	// The raw rule is the one nfslab appends, put straight into OUTPUT.
	stop := time.Now().Add(spec.For).UTC().Format("2006-01-02T15:04:05")
	raw := []string{"-d", "10.0.0.5/32", "-p", "tcp", "-m", "tcp", "--dport", "2049",
		"-m", "time", "--datestop", stop, "-m", "comment", "--comment", "nfslab-bench", "-j", "DROP"}

	apply := map[string]*series{}
	heal := map[string]*series{}
	for _, k := range []string{"raw", "direct", "daemon", "cli-direct", "cli-daemon"} {
		apply[k], heal[k] = &series{name: k}, &series{name: k}
	}
	timeIt := func(f func() error) (time.Duration, error) {
		t0 := time.Now()
		err := f()
		return time.Since(t0), err
	}
	viaClient := func(c client.Client, key string) error {
		var id string
		d, err := timeIt(func() error {
			a, err := c.Apply(ctx, spec)
			id = a.ID
			return err
		})
		if err != nil {
			return fmt.Errorf("%s apply: %w", key, err)
		}
		apply[key].add(d)
		d, err = timeIt(func() error { return c.Heal(ctx, "", id) })
		if err != nil {
			return fmt.Errorf("%s heal: %w", key, err)
		}
		heal[key].add(d)
		return nil
	}
	rawOnce := func() error {
		d, err := timeIt(func() error {
			return cmdrun.Run(ctx, "iptables", append([]string{"-w", "-I", "OUTPUT", "1"}, raw...)...)
		})
		if err != nil {
			return err
		}
		apply["raw"].add(d)
		d, err = timeIt(func() error { return cmdrun.Run(ctx, "iptables", append([]string{"-w", "-D", "OUTPUT"}, raw...)...) })
		if err != nil {
			return err
		}
		heal["raw"].add(d)
		return nil
	}
	cliOnce := func(key string, sockArg string) error {
		var out []byte
		d, err := timeIt(func() error {
			var err error
			out, err = cmdrun.Output(ctx, nfslab, "drop", "--dst", "10.0.0.5", "--no-verify", "--socket", sockArg)
			return err
		})
		if err != nil {
			return err
		}
		apply[key].add(d)
		f := strings.Fields(string(out))
		if len(f) < 4 {
			return fmt.Errorf("unexpected nfslab output %q", out)
		}
		id := f[3]
		d, err = timeIt(func() error { return cmdrun.Run(ctx, nfslab, "heal", id, "--socket", sockArg) })
		if err != nil {
			return err
		}
		heal[key].add(d)
		return nil
	}
	// Warm up every path once (chain creation, page cache), then
	// interleave the paths so that drift hits them alike.
	if err := rawOnce(); err != nil {
		return err
	}
	if err := viaClient(direct, "direct"); err != nil {
		return err
	}
	apply["direct"].d, heal["direct"].d, apply["raw"].d, heal["raw"].d = nil, nil, nil, nil
	// Steady state: another fault stays applied, so nfslab's chain and jump
	// exist, as in an experiment with more than one fault.
	keeper, err := mgr.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.99", Port: 2049}.WithDefaults())
	if err != nil {
		return err
	}
	// The daemon's own cost: the same HTTP round trips over the socket
	// against an in-memory injector.
	fakeSrv, err := daemon.New(daemon.Options{Injector: clienttest.New(clock.Real{}), Logger: logger, VerifyWindow: -1})
	if err != nil {
		return err
	}
	fakeSock := filepath.Join(dir, "fake.sock")
	fln, err := daemon.Listen(fakeSock, daemon.ListenOptions{Logger: logger})
	if err != nil {
		return err
	}
	go func() { _ = fakeSrv.Serve(fln) }()
	defer fakeSrv.Shutdown(context.Background())
	overhead := client.NewDaemon(fakeSock)
	apply["daemon-only"], heal["daemon-only"] = &series{}, &series{}
	if nfslab != "" {
		os.Setenv("NFSLAB_STATE_DIR", state)
	}
	for i := 0; i < n; i++ {
		if err := rawOnce(); err != nil {
			return err
		}
		if err := viaClient(direct, "direct"); err != nil {
			return err
		}
		if err := viaClient(viaDaemon, "daemon"); err != nil {
			return err
		}
		if err := viaClient(overhead, "daemon-only"); err != nil {
			return err
		}
		if nfslab != "" {
			if err := cliOnce("cli-direct", ""); err != nil { // --socket "": the direct path
				return err
			}
			if err := cliOnce("cli-daemon", sock); err != nil {
				return err
			}
		}
	}
	if err := mgr.Heal(ctx, "", keeper.ID); err != nil {
		return err
	}
	profiles := map[bool][4]string{}
	for _, long := range []bool{false, true} {
		p, err := profileManager(ctx, logger, filepath.Join(dir, fmt.Sprintf("pstate-%v", long)), long, spec)
		if err != nil {
			return err
		}
		profiles[long] = p
	}

	ver, _ := cmdrun.Output(ctx, "iptables", "--version")
	fmt.Printf("nfslab fault latency, %d iterations, %s, %s\n", n, strings.TrimSpace(string(ver)), time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("%-12s %10s %10s %10s %10s %8s %8s\n", "path", "apply p50", "apply p90", "heal p50", "heal p90", "apply/raw", "heal/raw")
	rawA, rawH := apply["raw"].pct(0.5), heal["raw"].pct(0.5)
	for _, k := range []string{"raw", "direct", "daemon", "cli-direct", "cli-daemon", "daemon-only"} {
		if len(apply[k].d) == 0 {
			continue
		}
		a, h := apply[k].pct(0.5), heal[k].pct(0.5)
		fmt.Printf("%-12s %10v %10v %10v %10v %8.2f %8.2f\n", k,
			a.Round(10*time.Microsecond), apply[k].pct(0.9).Round(10*time.Microsecond),
			h.Round(10*time.Microsecond), heal[k].pct(0.9).Round(10*time.Microsecond),
			float64(a)/float64(rawA), float64(h)/float64(rawH))
	}
	for _, long := range []bool{false, true} {
		name := "default Manager (direct path)"
		if long {
			name = "long-lived Manager (daemon)"
		}
		p := profiles[long]
		fmt.Printf("\niptables calls per operation, %s:\n", name)
		fmt.Printf("  first apply (creates chain and jump): %s\n", p[0])
		fmt.Printf("  apply, chain already there:           %s\n", p[1])
		fmt.Printf("  heal, other faults remain:            %s\n", p[2])
		fmt.Printf("  heal of the last fault:               %s\n", p[3])
	}
	fmt.Printf("  raw: 1 exec each for -I and -D\n")
	fmt.Printf("daemon-only is the daemon over an in-memory injector: the cost of HTTP on the unix socket alone.\n")
	return nil
}

// profileManager counts the iptables calls of one apply and one heal,
// steady state (chains already there) and from scratch.
func profileManager(ctx context.Context, logger *slog.Logger, state string, longLived bool, spec netfault.Spec) ([4]string, error) {
	var out [4]string
	counter := &execCounter{n: map[string]int{}}
	pm, err := netfault.NewManager(netfault.Options{Logger: logger, StateDir: state, LongLived: longLived,
		IPTablesFactory: counter.wrap(goIPTablesFactory())})
	if err != nil {
		return out, err
	}
	defer pm.Close()
	keep, err := pm.Apply(ctx, netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.9", Port: 2049}.WithDefaults())
	if err != nil {
		return out, err
	}
	out[0] = counter.take()
	f, err := pm.Apply(ctx, spec)
	if err != nil {
		return out, err
	}
	out[1] = counter.take()
	if err := pm.Heal(ctx, "", f.ID); err != nil {
		return out, err
	}
	out[2] = counter.take()
	if err := pm.Heal(ctx, "", keep.ID); err != nil {
		return out, err
	}
	out[3] = counter.take()
	return out, nil
}
