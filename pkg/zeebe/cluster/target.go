package cluster

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/container/podman"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/scenario"
	"github.com/nfslab/nfslab/pkg/zeebe"
)

const (
	// clusterPort is a broker's internal cluster messaging port (SWIM,
	// Raft) inside its container.
	clusterPort = 26502
	// labelBroker carries the broker's node ID on its container.
	labelBroker = "io.nfslab.broker"
	// readyTimeout bounds the wait for every broker's readiness: a JVM on
	// a slow NFS mount starts slowly.
	readyTimeout = 3 * time.Minute
)

// Options are the zeebe target's seams: the defaults talk to podman,
// a real gateway and the kernel; tests replace them with fakes.
type Options struct {
	// Runtime opens the container runtime (default podman.Connect with
	// $CONTAINER_HOST or the default socket).
	Runtime func(ctx context.Context) (container.Runtime, error)
	// Dial opens a client of the gateway at addr (default zeebe.Dial,
	// plaintext).
	Dial func(addr string) (zeebe.Client, error)
	// Probe answers the readiness endpoint (default HTTP).
	Probe container.Prober
	// ReadyTimeout bounds the wait for every broker's readiness (default 3m:
	// a JVM on a slow NFS mount starts slowly).
	ReadyTimeout time.Duration
	// AttachNetns names a running container's network namespace (default
	// container.AttachNetns); DetachNetns removes that name (default
	// container.DetachNetns).
	AttachNetns func(ctx context.Context, rt container.Runtime, ctr string) (string, error)
	DetachNetns func(ctr string) error
	// AddrOf is the IPv4 address of the container whose network namespace
	// has this name (default: the first global address, via netlink).
	AddrOf func(ctx context.Context, netns string) (string, error)
	// Network overrides the network mode chosen from the broker count:
	// host for one broker, bridge for a cluster.
	Network string
	// SampleInterval of the load (default 1s).
	SampleInterval time.Duration
	// Progress receives pull progress (default: logs/pull.log only).
	Progress io.Writer
}

// WithDefaults fills the seams left nil with the real ones.
func (o Options) WithDefaults() Options {
	if o.Runtime == nil {
		o.Runtime = func(ctx context.Context) (container.Runtime, error) { return podman.Connect(ctx, "") }
	}
	if o.Dial == nil {
		o.Dial = func(addr string) (zeebe.Client, error) {
			return zeebe.Dial(zeebe.Config{Address: addr, Insecure: true})
		}
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = readyTimeout
	}
	if o.AttachNetns == nil {
		o.AttachNetns = container.AttachNetns
	}
	if o.DetachNetns == nil {
		o.DetachNetns = container.DetachNetns
	}
	if o.AddrOf == nil {
		o.AddrOf = netnsAddr
	}
	return o
}

// Target runs Zeebe brokers in podman as the engine's target. One
// broker uses host networking (its gateway is 127.0.0.1:26500, nothing is
// published, no firewall rule is added); a cluster uses podman's bridge so
// that each broker has its own network namespace and address, which
// $broker:N, $leader:P and `in:` faults need.
type Target struct {
	// Network is host (one broker) or bridge (a cluster), unless
	// Options.Network chose.
	Network string

	cfg    scenario.ZeebeTarget
	runID  string
	logDir string
	opts   Options
	clk    clock.Clock
	log    *slog.Logger

	rt     container.Runtime
	lines  chan engine.Line
	exits  chan engine.Exit
	cancel context.CancelFunc
	ctx    context.Context

	mu      sync.Mutex
	brokers []*zbBroker
	client  zeebe.Client
	closed  bool
	watches sync.WaitGroup
}

type zbBroker struct {
	node    int
	name    string
	spec    container.ZeebeSpec
	ready   string // readiness URL
	ip      string
	netns   string
	gen     int  // incremented by every (re)start the adapter makes
	expect  bool // the coming exit is the engine's own restart
	seen    int  // log lines already streamed (a re-followed log starts at the top)
	logFile *os.File
}

var _ engine.Target = (*Target)(nil)

// NewTarget prepares brokers for runID; Start runs them.
func NewTarget(cfg scenario.ZeebeTarget, runID, logDir string, rt container.Runtime, opts Options, clk clock.Clock, logger *slog.Logger) *Target {
	opts = opts.WithDefaults()
	if clk == nil {
		clk = clock.Real{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Brokers == 0 {
		cfg.Brokers = 1
	}
	network := opts.Network
	if network == "" {
		network = container.NetworkHost
		if cfg.Brokers > 1 {
			network = container.NetworkBridge
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Target{cfg: cfg, runID: runID, logDir: logDir, opts: opts, clk: clk, log: logger, Network: network,
		rt: rt, lines: make(chan engine.Line, 8192), exits: make(chan engine.Exit, 16), ctx: ctx, cancel: cancel}
}

// BrokerName is the container name of broker node n of run runID: short
// (its netns name must fit pkg/netfault's 64 characters) and unique per
// run through a hash; the run label carries the readable run ID.
func BrokerName(runID string, n int) string {
	h := sha1.Sum([]byte(runID))
	return "nfslab-zb-" + hex.EncodeToString(h[:4]) + "-" + zeebe.NodeName(n)
}

// GatewayAddr is the gateway the load and Resolve talk to: broker 0's.
func (z *Target) GatewayAddr() string {
	port := z.cfg.GatewayPort
	if port == 0 {
		port = container.ZeebeGatewayPort
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// brokerSpec is broker n's container. A cluster gets the seed's
// ZEEBE_BROKER_CLUSTER_* settings and contact points of the brokers
// started before it.
func (z *Target) brokerSpec(n int, dataDir string, contacts []string) (container.ZeebeSpec, string) {
	c := z.cfg
	env := map[string]string{}
	if c.Brokers > 1 || c.Partitions > 0 {
		env["ZEEBE_BROKER_CLUSTER_NODEID"] = strconv.Itoa(n)
		env["ZEEBE_BROKER_CLUSTER_CLUSTERSIZE"] = strconv.Itoa(c.Brokers)
		env["ZEEBE_BROKER_CLUSTER_PARTITIONSCOUNT"] = strconv.Itoa(max(c.Partitions, 1))
		env["ZEEBE_BROKER_CLUSTER_REPLICATIONFACTOR"] = strconv.Itoa(max(c.Replication, 1))
		env["ZEEBE_BROKER_CLUSTER_CLUSTERNAME"] = strings.TrimSuffix(BrokerName(z.runID, 0), "-"+zeebe.NodeName(0))
	}
	if len(contacts) > 0 {
		env["ZEEBE_BROKER_CLUSTER_INITIALCONTACTPOINTS"] = strings.Join(contacts, ",")
	}
	gw, mon := c.GatewayPort, c.MonitoringPort
	if gw == 0 {
		gw = container.ZeebeGatewayPort
	}
	if mon == 0 {
		mon = container.ZeebeMonitorPort
	}
	spec := container.ZeebeSpec{Name: BrokerName(z.runID, n), Image: c.Image, DataDir: dataDir,
		Network: z.Network, RunID: z.runID, Labels: map[string]string{labelBroker: strconv.Itoa(n)}}
	if z.Network == container.NetworkHost {
		// Nothing is published: bind the broker to loopback only, and move
		// its ports if the scenario asks for others.
		env["ZEEBE_BROKER_NETWORK_HOST"] = "127.0.0.1"
		if gw != container.ZeebeGatewayPort {
			env["ZEEBE_BROKER_GATEWAY_NETWORK_PORT"] = strconv.Itoa(gw)
		}
		if mon != container.ZeebeMonitorPort {
			env["SERVER_PORT"] = strconv.Itoa(mon)
		}
	} else {
		// Each broker's gateway and monitoring port on 127.0.0.1, side by side.
		gw, mon = gw+n, mon+n
		spec.GatewayPort, spec.MonitorPort = gw, mon
	}
	for k, v := range c.Env {
		env[k] = v
	}
	spec.Env = env
	spec = spec.WithDefaults()
	return spec, fmt.Sprintf("http://127.0.0.1:%d/actuator/health/readiness", mon)
}

// Start pulls the image if needed, starts every broker on its own
// directory under dataDir (dataDir itself for a single broker), follows
// their logs and waits until each reports ready.
func (z *Target) Start(ctx context.Context, dataDir string) error {
	image := z.cfg.Image
	if image == "" {
		image = container.DefaultZeebeImage
	}
	z.cfg.Image = image
	pl := &pullLog{path: filepath.Join(z.logDir, "pull.log"), also: z.opts.Progress}
	defer pl.Close()
	pull := container.PullOptions{Progress: pl, Hint: "or set target.zeebe.image to a local image"}
	var contacts []string
	for n := 0; n < z.cfg.Brokers; n++ {
		dir := dataDir
		if z.cfg.Brokers > 1 {
			dir = filepath.Join(dataDir, zeebe.NodeName(n))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("creating data directory of broker %d: %w", n, err)
			}
		}
		spec, ready := z.brokerSpec(n, dir, contacts)
		if err := spec.Validate(); err != nil {
			return fmt.Errorf("broker %d: %w", n, err)
		}
		lf, err := os.OpenFile(filepath.Join(z.logDir, zeebe.NodeName(n)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("opening broker %d log: %w", n, err)
		}
		b := &zbBroker{node: n, name: spec.Name, spec: spec, ready: ready, logFile: lf}
		z.mu.Lock()
		z.brokers = append(z.brokers, b)
		z.mu.Unlock()
		if _, err := StartBroker(ctx, z.rt, spec, pull); err != nil {
			return fmt.Errorf("starting broker %d (%s): %w", n, spec.Name, err)
		}
		z.watch(b)
		if z.Network != container.NetworkHost {
			// Later brokers join through the ones already running.
			ip, err := z.brokerAddr(ctx, b)
			if err != nil {
				return fmt.Errorf("finding the address of broker %d: %w", n, err)
			}
			contacts = append(contacts, fmt.Sprintf("%s:%d", ip, clusterPort))
		}
		z.log.Info("zeebe broker started", "broker", n, "container", spec.Name, "network", z.Network)
	}
	return z.waitReady(ctx)
}

// pullLog is the run's logs/pull.log, created on the first progress line
// only: a run whose image is present has none.
type pullLog struct {
	path string
	also io.Writer
	f    *os.File
	err  error
}

func (p *pullLog) Write(b []byte) (int, error) {
	if p.f == nil && p.err == nil {
		p.f, p.err = os.Create(p.path)
	}
	if p.err != nil {
		return 0, p.err
	}
	if p.also != nil {
		_, _ = p.also.Write(b)
	}
	return p.f.Write(b)
}

func (p *pullLog) Close() error {
	if p.f == nil {
		return nil
	}
	return p.f.Close()
}

func (z *Target) waitReady(ctx context.Context) error {
	z.mu.Lock()
	brokers := append([]*zbBroker(nil), z.brokers...)
	z.mu.Unlock()
	deadline := z.clk.Now().Add(z.opts.ReadyTimeout)
	for _, b := range brokers {
		left := deadline.Sub(z.clk.Now())
		if left <= 0 {
			left = time.Millisecond
		}
		err := WaitBroker(ctx, z.rt, b.name, b.ready, container.ReadyOptions{Timeout: left, Clock: z.clk, Probe: z.opts.Probe})
		if err != nil {
			return fmt.Errorf("broker %d: %w", b.node, err)
		}
	}
	return nil
}

// watch follows broker b's log into the detectors and its log file, and
// reports an exit the engine did not cause, after copying the JVM's
// hs_err report into the run's logs.
func (z *Target) watch(b *zbBroker) {
	z.mu.Lock()
	b.gen++
	gen := b.gen
	z.mu.Unlock()
	src := zeebe.NodeName(b.node)
	z.watches.Add(2)
	go func() {
		defer z.watches.Done()
		i := 0
		err := z.rt.Logs(z.ctx, b.name, container.LogOptions{Follow: true}, func(l container.LogLine) {
			z.mu.Lock()
			skip := i < b.seen
			if !skip {
				b.seen++
			}
			f := b.logFile
			z.mu.Unlock()
			i++
			if skip {
				return
			}
			if f != nil {
				fmt.Fprintln(f, l.Text)
			}
			select {
			case z.lines <- engine.Line{Time: z.clk.Now(), Source: src, Text: l.Text}:
			default: // a stalled detector must not stall the log stream
			}
		})
		if err != nil && z.ctx.Err() == nil {
			z.log.Warn("following broker log", "broker", b.node, "err", err)
		}
	}()
	go func() {
		defer z.watches.Done()
		code, err := z.rt.Wait(z.ctx, b.name)
		if err != nil {
			return // closed, or the container is gone
		}
		z.mu.Lock()
		expected := z.closed || gen != b.gen || b.expect
		if gen == b.gen {
			b.expect = false
		}
		z.mu.Unlock()
		if expected {
			return
		}
		x := engine.Exit{Time: z.clk.Now(), Name: src, Code: code}
		if code > 128 && code < 128+65 {
			x.Signal = unixSignalName(code - 128)
		}
		if code != 0 {
			paths, err := container.CopyHsErr(z.ctx, z.rt, b.name, z.logDir, container.ZeebeWorkDir)
			switch {
			case err == nil:
				z.log.Info("copied hs_err report", "broker", b.node, "files", paths)
				z.noteLine(b, fmt.Sprintf("nfslab: broker %s exited with %d; hs_err report copied to %s", src, code, strings.Join(paths, ", ")))
			case !errors.Is(err, container.ErrNotFound):
				z.log.Warn("copying hs_err report", "broker", b.node, "err", err)
			}
		}
		select {
		case z.exits <- x:
		default:
		}
	}()
}

// unixSignalName names the signals a broker dies of (128+N exit codes).
func unixSignalName(n int) string {
	switch n {
	case 6:
		return "SIGABRT" // the JVM's abort after a fatal error such as SIGBUS
	case 7:
		return "SIGBUS"
	case 9:
		return "SIGKILL"
	case 11:
		return "SIGSEGV"
	case 15:
		return "SIGTERM"
	}
	return syscall.Signal(n).String()
}

// noteLine writes nfslab's own remark into the broker's log file only.
func (z *Target) noteLine(b *zbBroker, text string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if b.logFile != nil {
		fmt.Fprintln(b.logFile, text)
	}
}

// EmitLine feeds a line that is not a broker's (the load's client errors)
// into the detectors.
func (z *Target) emitLine(source, text string) {
	select {
	case z.lines <- engine.Line{Time: z.clk.Now(), Source: source, Text: text}:
	default:
	}
}

// broker finds a broker by the scenario's name: "" (broker 0), broker-N,
// $broker:N or $leader:P (from the gateway's topology).
func (z *Target) broker(ctx context.Context, name string) (*zbBroker, error) {
	n := 0
	switch {
	case name == "":
	case scenario.IsRef(name):
		ref, err := scenario.ParseRef(name)
		if err != nil {
			return nil, err
		}
		switch ref.Kind {
		case scenario.RefLeader:
			node, err := z.leader(ctx, int32(ref.N))
			if err != nil {
				return nil, err
			}
			n = int(node)
		case scenario.RefBroker:
			n = ref.N
		default:
			return nil, fmt.Errorf("%s is not a broker (want %s, %sN or %sP)", name, zeebe.NodeName(0), scenario.RefBroker, scenario.RefLeader)
		}
	default:
		v, err := zeebe.ParseNodeName(name)
		if err != nil {
			return nil, fmt.Errorf("no broker: %w (or %sN, %sP)", err, scenario.RefBroker, scenario.RefLeader)
		}
		n = v
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if n < 0 || n >= len(z.brokers) {
		return nil, fmt.Errorf("%s: there are %d broker(s) running", cmp.Or(name, zeebe.NodeName(0)), len(z.brokers))
	}
	return z.brokers[n], nil
}

// leader asks the gateway which node leads partition p; an election in
// progress is waited out for a bounded time.
func (z *Target) leader(ctx context.Context, p int32) (int32, error) {
	c, err := z.gateway()
	if err != nil {
		return -1, err
	}
	var last error
	for attempt := 0; attempt < 30; attempt++ {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		top, err := c.Topology(tctx)
		cancel()
		if err == nil {
			if n := top.Leader(p); n >= 0 {
				return n, nil
			}
			last = fmt.Errorf("no broker leads partition %d in the topology (%d brokers)", p, len(top.Brokers))
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-z.clk.After(time.Second):
		}
	}
	return -1, fmt.Errorf("finding the leader of partition %d: %w", p, last)
}

func (z *Target) gateway() (zeebe.Client, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.client != nil {
		return z.client, nil
	}
	c, err := z.opts.Dial(z.GatewayAddr())
	if err != nil {
		return nil, err
	}
	z.client = c
	return c, nil
}

// brokerAddr is b's address in its own network namespace.
func (z *Target) brokerAddr(ctx context.Context, b *zbBroker) (string, error) {
	if z.Network == container.NetworkHost {
		return "127.0.0.1", nil
	}
	z.mu.Lock()
	ip := b.ip
	z.mu.Unlock()
	if ip != "" {
		return ip, nil
	}
	ns, err := z.brokerNetns(ctx, b)
	if err != nil {
		return "", err
	}
	ip, err = z.opts.AddrOf(ctx, ns)
	if err != nil {
		return "", fmt.Errorf("address of %s: %w", b.name, err)
	}
	z.mu.Lock()
	b.ip = ip
	z.mu.Unlock()
	return ip, nil
}

func (z *Target) brokerNetns(ctx context.Context, b *zbBroker) (string, error) {
	if z.Network == container.NetworkHost {
		// The broker shares the machine's namespace: a route there would cut
		// the machine itself, not one broker.
		return "", fmt.Errorf("broker %s runs with host networking (one broker): it has no network namespace of its own: %w", b.name, engine.ErrUnsupported)
	}
	z.mu.Lock()
	ns := b.netns
	z.mu.Unlock()
	if ns != "" {
		return ns, nil
	}
	ns, err := z.opts.AttachNetns(ctx, z.rt, b.name)
	if err != nil {
		return "", err
	}
	z.mu.Lock()
	b.netns = ns
	z.mu.Unlock()
	return ns, nil
}

// Resolve implements engine.Target: $broker:N and $leader:P become the
// broker's IPv4 address.
func (z *Target) Resolve(ctx context.Context, ref string) (string, error) {
	if r, err := scenario.ParseRef(ref); err != nil || r.Kind == scenario.RefNFSServer {
		return "", fmt.Errorf("the zeebe target cannot resolve %s: %w", ref, engine.ErrUnsupported)
	}
	b, err := z.broker(ctx, ref)
	if err != nil {
		return "", err
	}
	ip, err := z.brokerAddr(ctx, b)
	if err == nil {
		z.log.Info("resolved", "ref", ref, "broker", b.node, "addr", ip)
	}
	return ip, err
}

// Netns implements engine.Target: the named network namespace of a broker
// (broker-N, $broker:N or $leader:P), attached on first use.
func (z *Target) Netns(ctx context.Context, ref string) (string, error) {
	b, err := z.broker(ctx, ref)
	if err != nil {
		return "", err
	}
	return z.brokerNetns(ctx, b)
}

// Restart stops every broker, runs between, starts them again and waits
// for readiness: the brokers replay their logs from the storage.
func (z *Target) Restart(ctx context.Context, between func(context.Context) error) error {
	z.mu.Lock()
	brokers := append([]*zbBroker(nil), z.brokers...)
	for _, b := range brokers {
		b.expect = true
	}
	z.mu.Unlock()
	for _, b := range brokers {
		if err := z.rt.Stop(ctx, b.name, 30*time.Second); err != nil && !errors.Is(err, container.ErrNotModified) {
			return fmt.Errorf("stopping %s: %w", b.name, err)
		}
	}
	if between != nil {
		if err := between(ctx); err != nil {
			return fmt.Errorf("between stop and start: %w", err)
		}
	}
	for _, b := range brokers {
		if err := z.startAgain(ctx, b); err != nil {
			return err
		}
	}
	return z.waitReady(ctx)
}

func (z *Target) startAgain(ctx context.Context, b *zbBroker) error {
	if err := z.rt.Start(ctx, b.name); err != nil && !errors.Is(err, container.ErrNotModified) {
		return fmt.Errorf("starting %s: %w", b.name, err)
	}
	z.mu.Lock()
	b.expect = false
	// A new process means a new network namespace: attach it again on use.
	if b.netns != "" {
		_ = z.opts.DetachNetns(b.name)
	}
	b.netns = ""
	z.mu.Unlock()
	z.watch(b)
	return nil
}

// Control implements engine.Target for one broker. An exit after stop or
// kill is reported (exit-code expectations see 143 or 137); the exit
// inside a restart is not.
func (z *Target) Control(ctx context.Context, action, ref string) error {
	b, err := z.broker(ctx, ref)
	if err != nil {
		return err
	}
	switch action {
	case scenario.ActionPause:
		err = z.rt.Pause(ctx, b.name)
	case scenario.ActionUnpause:
		err = z.rt.Unpause(ctx, b.name)
	case scenario.ActionStop:
		err = z.rt.Stop(ctx, b.name, 30*time.Second)
	case scenario.ActionKill:
		err = z.rt.Kill(ctx, b.name, syscall.SIGKILL)
	case scenario.ActionRestart:
		z.mu.Lock()
		b.expect = true
		z.mu.Unlock()
		if err := z.rt.Stop(ctx, b.name, 30*time.Second); err != nil && !errors.Is(err, container.ErrNotModified) {
			return fmt.Errorf("stopping %s: %w", b.name, err)
		}
		return z.startAgain(ctx, b)
	default:
		return fmt.Errorf("%s: %w", action, engine.ErrUnsupported)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", action, b.name, err)
	}
	return nil
}

func (z *Target) Exited() <-chan engine.Exit  { return z.exits }
func (z *Target) Lines() <-chan engine.Line   { return z.lines }
func (z *Target) Events() <-chan engine.Event { return nil }

// Close removes every broker container of the run (by its run label,
// unpausing paused ones first) and the namespace names attached for them.
// Safe after a failed Start.
func (z *Target) Close(ctx context.Context) error {
	z.mu.Lock()
	z.closed = true
	client := z.client
	z.client = nil
	z.mu.Unlock()
	var errs []error
	if z.rt != nil {
		_, err := RemoveAll(ctx, z.rt, z.runID, z.opts.DetachNetns)
		errs = append(errs, err)
	}
	z.cancel()
	waited := make(chan struct{})
	go func() { z.watches.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second): // a log stream that ignores cancellation must not hang the rollback
		errs = append(errs, errors.New("broker log followers did not stop within 10s"))
	}
	if client != nil {
		_ = client.Close()
	}
	z.mu.Lock()
	for _, b := range z.brokers {
		if b.logFile != nil {
			errs = append(errs, b.logFile.Close())
			b.logFile = nil
		}
	}
	z.mu.Unlock()
	return errors.Join(errs...)
}
