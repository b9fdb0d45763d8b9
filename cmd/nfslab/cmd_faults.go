package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nfslab/nfslab/pkg/cleanup"
	"github.com/nfslab/nfslab/pkg/client"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/container/podman"
	"github.com/nfslab/nfslab/pkg/daemon"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// clientFactoryKey carries, in a command's context, a replacement for
// client.Auto: tests run the commands against fakes this way.
type clientFactoryKey struct{}

type clientFactory func(ctx context.Context, g *globals) (client.Client, error)

func withClientFactory(ctx context.Context, f clientFactory) context.Context {
	return context.WithValue(ctx, clientFactoryKey{}, f)
}

// StateDirEnv overrides where fault metadata is kept (default
// netfault.DefaultStateDir); tests point it into a temporary directory.
const StateDirEnv = "NFSLAB_STATE_DIR"

// newInjector builds the in-process kernel injector of the direct path.
func newInjector(g *globals) (netfault.Injector, error) {
	return netfault.NewManager(netfault.Options{Logger: g.logger, StateDir: os.Getenv(StateDirEnv)})
}

// openClient returns the daemon client when the daemon answers on
// g.socket and the direct one otherwise; a socket the user named must
// answer.
func openClient(ctx context.Context, g *globals) (client.Client, error) {
	if f, ok := ctx.Value(clientFactoryKey{}).(clientFactory); ok {
		return f(ctx, g)
	}
	return client.Auto(ctx, g.socket, g.socketNamed(), func() (netfault.Injector, error) { return newInjector(g) }, client.DirectOptions{})
}

// reapedKey carries, in a command's context, the injector `nfslab expire`
// works on instead of the kernel's (tests).
type reapedKey struct{}

// openReaped returns the injector a reaper records itself with and
// expires its fault through: the kernel's, even when a daemon runs.
func openReaped(ctx context.Context, g *globals) (netfault.Reaped, error) {
	if r, ok := ctx.Value(reapedKey{}).(netfault.Reaped); ok {
		return r, nil
	}
	inj, err := newInjector(g)
	if err != nil {
		return nil, err
	}
	r, ok := inj.(netfault.Reaped)
	if !ok {
		return nil, fmt.Errorf("injector %T cannot expire faults", inj)
	}
	return r, nil
}

func newFaultCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newRuleFaultCmd(g, netfault.KindDrop),
		newRuleFaultCmd(g, netfault.KindReject),
		newUnreachableCmd(g),
		newShapeFaultCmd(g, netfault.KindDelay),
		newShapeFaultCmd(g, netfault.KindLimit),
		newHealCmd(g),
		newStatusCmd(g),
		newWatchCmd(g),
		newExpireCmd(g),
	}
}

// faultOpts are the flags shared by the fault commands.
type faultOpts struct {
	spec         netfault.Spec
	dir, typ     string
	dryRun       bool
	noVerify     bool
	verifyWindow time.Duration
}

func addCommonFlags(cmd *cobra.Command, o *faultOpts) {
	f := cmd.Flags()
	f.StringVar(&o.spec.Dst, "dst", "", "destination address or CIDR prefix, IPv4 or IPv6 (required)")
	f.DurationVar(&o.spec.For, "for", netfault.DefaultLifetime, "lifetime; the fault heals itself afterwards")
	f.StringVar(&o.spec.Label, "label", "", "free text shown in status")
	f.StringVar(&o.spec.Netns, "netns", "", "act in network namespace NAME (/run/netns/NAME)")
	f.BoolVar(&o.spec.Force, "force", false, "allow a destination that covers every address (/0) in this namespace, which cuts the machine off")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the rules and routes it would create, and change nothing")
}

func newRuleFaultCmd(g *globals, kind netfault.Kind) *cobra.Command {
	o := &faultOpts{}
	short := "Drop matching packets silently, all or with a probability"
	example := "  nfslab drop --dst 192.168.24.110 --prob 0.8 --for 5m"
	if kind == netfault.KindReject {
		short = "Reject matching packets (tcp-reset for tcp): a fast failure instead of a silent one"
		example = "  nfslab reject --dst 192.168.24.110 --port 2049"
	}
	cmd := &cobra.Command{
		Use:     string(kind) + " --dst ADDR[/CIDR] [flags]",
		Short:   short,
		Example: example,
		Args:    noArgs,
		RunE:    runSelectorFault(g, o, kind),
	}
	addCommonFlags(cmd, o)
	f := cmd.Flags()
	addSelectorFlags(f, o, "from dst:port")
	if kind == netfault.KindDrop {
		f.Float64Var(&o.spec.Prob, "prob", 0, "drop each matching packet with probability P (0 < P <= 1); default every packet")
	}
	f.BoolVar(&o.spec.MatchOriginal, "match-original", false, "match the connection's original destination (conntrack), so a fault aimed at a DNATed address such as localhost:2049 bites")
	f.IntVar(&o.spec.LocalPort, "local-port", 0, "this host's own port, for a fault on the server (--dst is then the client; --port defaults to 0, the client's port being ephemeral)")
	f.DurationVar(&o.verifyWindow, "verify-window", daemon.DefaultVerifyWindow, "how long to watch the counters for a first hit")
	f.BoolVar(&o.noVerify, "no-verify", false, "do not watch the counters after applying")
	return cmd
}

func newUnreachableCmd(g *globals) *cobra.Command {
	o := &faultOpts{}
	cmd := &cobra.Command{
		Use:     "unreachable --dst ADDR[/CIDR] [flags]",
		Short:   "Add an unreachable, blackhole or prohibit route to dst (ip route add unreachable ...)",
		Example: "  nfslab unreachable --dst 10.0.0.12 --type blackhole --for 2m",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.spec.Kind = netfault.KindUnreachable
			o.spec.RouteType = netfault.RouteType(o.typ)
			o.noVerify = true // routes have no counters
			if err := checkFaultFlags(cmd, o); err != nil {
				return err
			}
			return runFault(cmd, g, o)
		},
	}
	addCommonFlags(cmd, o)
	cmd.Flags().StringVar(&o.typ, "type", string(netfault.RouteUnreachable), "route type: unreachable (EHOSTUNREACH), blackhole (silent) or prohibit (EACCES)")
	return cmd
}

// newShapeFaultCmd is `nfslab delay` and `nfslab limit`: netem or an htb
// rate in nfslab's own class, for the matching traffic only.
func newShapeFaultCmd(g *globals, kind netfault.Kind) *cobra.Command {
	o := &faultOpts{}
	short := "Delay matching packets (netem: delay, jitter, loss, duplicate, corrupt, reorder) in nfslab's own qdisc class"
	example := "  nfslab delay --dst 192.168.24.110 --delay 200ms --jitter 50ms --correlation 25% --for 5m\n" +
		"  nfslab delay --dst 192.168.24.110 --delay 100ms --dir both --netns lab"
	if kind == netfault.KindLimit {
		short = "Bound the rate of matching packets (an htb class rate) in nfslab's own qdisc class"
		example = "  nfslab limit --dst 192.168.24.110 --rate 1mbit --burst 32kb --for 5m"
	}
	cmd := &cobra.Command{
		Use:   string(kind) + " --dst ADDR[/CIDR] [flags]",
		Short: short,
		Long: short + `.

The traffic to --dst (and --port) is classified into an htb class of
nfslab's (handle 7f73:N) on the device the route to --dst leaves by, by a
rule in nfslab's mangle chain NFSLAB-SHAPE with -m time --datestop: at the
expiry the kernel stops shaping, also when no nfslab runs. --dir in shapes
what --dst sends through an ifb device (nfslab-<id>) fed by an ingress
filter; that half has no kernel expiry (the daemon or a reaper heals it).
A root qdisc the user set up (not noqueue, pfifo_fast, fq_codel or mq) is
never replaced: the command refuses, naming it. Delay needs sch_netem in
the kernel (nfslab doctor says whether it is there).`,
		Example: example,
		Args:    noArgs,
		RunE:    runSelectorFault(g, o, kind),
	}
	addCommonFlags(cmd, o)
	f := cmd.Flags()
	addSelectorFlags(f, o, "from dst:port, through an ifb device")
	if kind == netfault.KindDelay {
		f.DurationVar(&o.spec.Delay, "delay", 0, "added one-way delay, e.g. 200ms")
		f.DurationVar(&o.spec.Jitter, "jitter", 0, "vary the delay by up to this much either way, e.g. 50ms")
		f.Var(percentFlag(&o.spec.Correlation), "correlation", "how much each delay depends on the previous one, e.g. 25%")
		f.Var(percentFlag(&o.spec.Loss), "loss", "lose this share of matching packets, e.g. 1%")
		f.Var(percentFlag(&o.spec.Duplicate), "duplicate", "send this share twice, e.g. 1%")
		f.Var(percentFlag(&o.spec.Corrupt), "corrupt", "flip a bit in this share, e.g. 0.1%")
		f.Var(percentFlag(&o.spec.Reorder), "reorder", "send this share at once, ahead of the delayed ones, e.g. 25%")
	} else {
		f.Var(rateFlag(&o.spec.Rate), "rate", "the bound, in tc's units: 1mbit, 512kbit, 100kbps (required)")
		f.Var(sizeFlag(&o.spec.Burst), "burst", "bytes let through at once above the rate, e.g. 32kb (default: rate/HZ + MTU)")
	}
	f.DurationVar(&o.verifyWindow, "verify-window", daemon.DefaultVerifyWindow, "how long to watch the class counters for a first packet")
	f.BoolVar(&o.noVerify, "no-verify", false, "do not watch the counters after applying")
	return cmd
}

// unitFlag reads a value with a unit ("25%", "1mbit", "32kb") through
// netfault's parser, so flags and YAML read units the same way.
type unitFlag[T comparable] struct {
	v     *T
	typ   string
	parse func(string) (T, error)
	show  func(T) string
}

func (f unitFlag[T]) String() string {
	var zero T
	if f.v == nil || *f.v == zero {
		return ""
	}
	return f.show(*f.v)
}

func (f unitFlag[T]) Set(s string) error {
	v, err := f.parse(s)
	if err != nil {
		return err
	}
	*f.v = v
	return nil
}

func (f unitFlag[T]) Type() string { return f.typ }

func percentFlag(p *float64) unitFlag[float64] {
	return unitFlag[float64]{v: p, typ: "percent", parse: netfault.ParsePercent,
		show: func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "%" }}
}

func rateFlag(r *netfault.Rate) unitFlag[netfault.Rate] {
	return unitFlag[netfault.Rate]{v: r, typ: "rate", parse: netfault.ParseRate, show: netfault.Rate.String}
}

func sizeFlag(z *netfault.Size) unitFlag[netfault.Size] {
	return unitFlag[netfault.Size]{v: z, typ: "size", parse: netfault.ParseSize, show: netfault.Size.String}
}

// runSelectorFault runs a fault that selects traffic by port, protocol
// and direction (drop, reject, delay, limit).
func runSelectorFault(g *globals, o *faultOpts, kind netfault.Kind) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		o.spec.Kind = kind
		o.spec.Dir = netfault.Direction(o.dir)
		if err := checkFaultFlags(cmd, o); err != nil {
			return err
		}
		return runFault(cmd, g, o)
	}
}

// addSelectorFlags adds --port, --proto and --dir; in says what --dir in
// selects.
func addSelectorFlags(f *pflag.FlagSet, o *faultOpts, in string) {
	f.IntVar(&o.spec.Port, "port", netfault.DefaultPort, "server port (0: any port)")
	f.StringVar(&o.spec.Proto, "proto", netfault.DefaultProto, "protocol: tcp or udp")
	f.StringVar(&o.dir, "dir", string(netfault.DirOut), "direction: out (to dst:port), in ("+in+") or both")
}

// checkFaultFlags rejects bad input before anything is touched.
func checkFaultFlags(cmd *cobra.Command, o *faultOpts) error {
	f := cmd.Flags()
	if f.Changed("prob") && o.spec.Prob == 0 {
		return usage(errors.New("probability 0 would drop nothing (want 0 < p <= 1; leave --prob out to drop every packet)"))
	}
	if f.Changed("for") && o.spec.For == 0 {
		return usage(errors.New("lifetime 0s is not positive (--for wants a duration such as 30s or 5m)"))
	}
	if o.verifyWindow < 0 || (f.Changed("verify-window") && o.verifyWindow == 0) {
		return usage(fmt.Errorf("verify window %v is not positive", o.verifyWindow))
	}
	if f.Lookup("port") != nil && !f.Changed("port") {
		o.spec.Port = netfault.DefaultPortFor(o.spec)
	}
	o.spec = o.spec.WithDefaults()
	if err := o.spec.Validate(); err != nil {
		return usage(err)
	}
	return nil
}

func faultHealCommand(f netfault.Fault) string {
	s := "nfslab heal " + f.ID
	if f.Spec.Netns != "" {
		s += " --netns " + f.Spec.Netns
	}
	return s
}

func runFault(cmd *cobra.Command, g *globals, o *faultOpts) error {
	ctx := cmd.Context()
	c, err := openClient(ctx, g)
	if err != nil {
		return err
	}
	defer c.Close()
	w := g.stdout
	if o.dryRun {
		p, err := c.Plan(ctx, o.spec)
		if err != nil {
			return faultErr(err)
		}
		fmt.Fprintf(w, "dry run: %s would create (nothing was changed):\n", o.spec.Kind)
		printFaultCommands(w, p.Rules, p.Routes)
		return nil
	}
	f, err := c.Apply(ctx, o.spec)
	if err != nil {
		return faultErr(err)
	}
	fmt.Fprintf(w, "applied %s fault %s (%s, via %s)\n", f.Spec.Kind, f.ID, faultSelectors(f.Spec), c.Mode())
	printFaultCommands(w, f.Rules, f.Routes)
	fmt.Fprintf(w, "  lifetime: %v, expires %s\n", f.Spec.For, f.Expires.Local().Format(time.RFC3339))
	for _, n := range f.Notes {
		fmt.Fprintf(w, "  note:     %s\n", n)
	}
	fmt.Fprintf(w, "  heal:     %s\n", faultHealCommand(f))
	if o.noVerify {
		return nil
	}
	fmt.Fprintf(w, "watching its counters for %v ...\n", o.verifyWindow)
	v, err := netfault.Verify(ctx, c, clock.Real{}, o.spec.Netns, f.ID, o.verifyWindow, faultVerifyPoll(o.verifyWindow))
	if err != nil {
		return fmt.Errorf("verifying fault %s: %w", f.ID, err)
	}
	if v.Bit {
		fmt.Fprintf(w, "bites: %d packets after %v\n", v.Packets, v.FirstHit.Round(time.Millisecond))
		return nil
	}
	fmt.Fprintf(w, "WARNING: fault %s matched no packets in %v; it may not bite.\n", f.ID, o.verifyWindow)
	if len(v.Findings) == 0 {
		fmt.Fprintf(w, "  no likely cause found: is there traffic to %s right now?\n", f.Spec.Dst)
	}
	for _, fd := range v.Findings {
		fmt.Fprintf(w, "  - %s: %s\n", fd.Cause, fd.Detail)
		if fd.Fix != "" {
			fmt.Fprintf(w, "    fix: %s\n", fd.Fix)
		}
	}
	return nil
}

func faultVerifyPoll(window time.Duration) time.Duration {
	return max(min(window/10, 500*time.Millisecond), 10*time.Millisecond)
}

func printFaultCommands(w io.Writer, rules, routes []string) {
	for _, r := range rules {
		fmt.Fprintf(w, "  rule:     %s\n", r)
	}
	for _, r := range routes {
		fmt.Fprintf(w, "  route:    %s\n", r)
	}
}

// faultErr maps the client's sentinel errors to exit statuses.
func faultErr(err error) error {
	if errors.Is(err, netfault.ErrInvalid) {
		return usage(err)
	}
	return err
}

// selectors describes what a fault matches, in one short phrase.
func faultSelectors(s netfault.Spec) string {
	if !s.Selects() {
		return fmt.Sprintf("%s route to %s", s.RouteType, s.Dst)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", s.Proto, s.Dst)
	if s.Port != 0 {
		fmt.Fprintf(&b, ":%d", s.Port)
	}
	if s.LocalPort != 0 {
		fmt.Fprintf(&b, " local-port %d", s.LocalPort)
	}
	fmt.Fprintf(&b, " %s", s.Dir)
	if s.Prob != 0 && s.Prob != 1 {
		fmt.Fprintf(&b, " p=%g", s.Prob)
	}
	if s.MatchOriginal {
		b.WriteString(" orig-dst")
	}
	if s.IsShape() {
		b.WriteString(" " + shapeText(s))
	}
	return b.String()
}

// shapeText says how a delay or limit fault shapes, in tc's words.
func shapeText(s netfault.Spec) string {
	if s.Kind == netfault.KindLimit {
		t := "rate " + s.Rate.String()
		if s.Burst != 0 {
			t += " burst " + s.Burst.String()
		}
		return t
	}
	var parts []string
	if s.Delay != 0 {
		d := "delay " + s.Delay.String()
		if s.Jitter != 0 {
			d += "±" + s.Jitter.String()
			if s.Correlation != 0 {
				d += fmt.Sprintf(" (%g%%)", s.Correlation)
			}
		}
		parts = append(parts, d)
	}
	for _, o := range []struct {
		n string
		v float64
	}{{"loss", s.Loss}, {"duplicate", s.Duplicate}, {"corrupt", s.Corrupt}, {"reorder", s.Reorder}} {
		if o.v != 0 {
			parts = append(parts, fmt.Sprintf("%s %g%%", o.n, o.v))
		}
	}
	return strings.Join(parts, " ")
}

func newHealCmd(g *globals) *cobra.Command {
	var all, faultsOnly bool
	var netns string
	cmd := &cobra.Command{
		Use:   "heal [ID...] [--all [--faults-only]] [--netns NAME]",
		Short: "Remove faults by ID, or everything nfslab created with --all (works without the daemon)",
		Long: `Remove faults by ID, or with --all every nfslab object: network faults, then
(in reverse order of creation) containers labelled io.nfslab.owner=nfslab, the
/run/netns/nfslab-ctr-* names, the child processes recorded in /run/nfslab/proc
(after aborting the FUSE connection of every faultfs mount nobody serves),
faultfs mounts and stale control sockets under /run/nfslab/faultfs and recorded
faultfs mounts elsewhere, mounts under /run/nfslab/mnt and the netns NFS server
under /run/nfslab/nfsd. --faults-only, or --netns NAME (which names one
namespace), heals network faults only. NFSLAB_ROOT moves /run/nfslab.`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			if all == (len(ids) > 0) {
				return usage(errors.New("give fault IDs or --all (not both)"))
			}
			if faultsOnly && !all {
				return usage(errors.New("--faults-only goes with --all"))
			}
			ctx := cmd.Context()
			c, err := openClient(ctx, g)
			if err != nil {
				return err
			}
			defer c.Close()
			if all {
				got, err := c.HealAll(ctx, netns)
				if err != nil {
					return faultErr(err)
				}
				if len(got) == 0 {
					fmt.Fprintf(g.stdout, "nothing to heal in %s\n", faultNetnsLabel(netns))
				} else {
					fmt.Fprintf(g.stdout, "healed %d fault(s) in %s: %s\n", len(got), faultNetnsLabel(netns), strings.Join(got, " "))
				}
				if faultsOnly || netns != "" {
					return nil
				}
				// Faults went through the client (the daemon, if it runs,
				// forgets them); the rest is removed in-process.
				// heal removes nfslab's containers even when no podman
				// service runs: `nfslab run` may have started its own,
				// which died with it while conmon kept the containers.
				pod := &podman.Session{}
				rep, err := cleanup.Sweep(ctx, cleanupOptions(ctx, g, pod))
				if cerr := pod.Close(); cerr != nil {
					g.logger.Warn("stopping the podman service heal started", "err", cerr)
				}
				printCleanup(g.stdout, rep)
				if err != nil {
					return fmt.Errorf("removing nfslab's other objects: %w", err)
				}
				return nil
			}
			var missing []string
			for _, id := range ids {
				err := c.Heal(ctx, netns, id)
				switch {
				case err == nil:
					fmt.Fprintf(g.stdout, "healed %s\n", id)
				case errors.Is(err, netfault.ErrNotFound):
					missing = append(missing, id)
				default:
					return faultErr(err)
				}
			}
			if len(missing) > 0 {
				return exitError{1, fmt.Errorf("no fault with ID %s in %s (see nfslab status)", faultQuoteAll(missing), faultNetnsLabel(netns))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every nfslab fault, container, namespace name, faultfs, mount and NFS server")
	cmd.Flags().BoolVar(&faultsOnly, "faults-only", false, "with --all: remove network faults only")
	cmd.Flags().StringVar(&netns, "netns", "", "act in network namespace NAME (faults only)")
	return cmd
}

// cleanupOptsKey carries, in a command's context, the cleanup.Options that
// heal --all and the daemon use instead of the host's (tests).
type cleanupOptsKey struct{}

func withCleanupOptions(ctx context.Context, o cleanup.Options) context.Context {
	return context.WithValue(ctx, cleanupOptsKey{}, o)
}

// cleanupOptions returns what heal --all and the daemon sweep besides
// faults: the whole host, unless a test put options in the context. A test
// that replaced the fault client or injector but named no cleanup gets
// none: it must not sweep the real machine.
//
// pod, when given, is the podman service heal talks to (one of its own if
// none runs); else containers are found only through a running service.
func cleanupOptions(ctx context.Context, g *globals, pod *podman.Session) cleanup.Options {
	if o, ok := ctx.Value(cleanupOptsKey{}).(cleanup.Options); ok {
		return o
	}
	_, fakeClient := ctx.Value(clientFactoryKey{}).(clientFactory)
	_, fakeInj := ctx.Value(daemonInjectorKey{}).(netfault.Injector)
	if fakeClient || fakeInj {
		return cleanup.Options{Logger: g.logger}
	}
	o := cleanup.HostOptions(nil, podman.At(""))
	if g.root != "" {
		o = cleanup.RootOptions(nil, g.root)
	}
	if pod != nil && o.Podman != nil {
		// Only a run that started its own podman service (recorded, and
		// killed with it) can have left containers no service answers
		// for: then heal starts one too. Else it starts none, since a
		// podman service leaves its storage mounted behind it.
		pod.Records, pod.Own = o.Records, podman.OwnNever
		if podman.ServiceRecorded(o.Records) {
			pod.Own = podman.OwnWhenAbsent
		}
		o.Podman = pod.Runtime
	}
	o.Logger = g.logger
	return o
}

var cleanupNouns = map[string]string{
	cleanup.StepFaults:     "fault(s)",
	cleanup.StepContainers: "container(s)",
	cleanup.StepNetnsNames: "container namespace name(s)",
	cleanup.StepProcesses:  "process(es)",
	cleanup.StepFaultfs:    "faultfs mount(s) and socket(s)",
	cleanup.StepMounts:     "mount(s)",
	cleanup.StepNFSServer:  "netns NFS server(s)",
	cleanup.StepExports:    "server export(s)",
	cleanup.StepDevices:    "block device(s)",
}

// printCleanup prints one line per step that removed or kept something,
// and one per failed step.
func printCleanup(w io.Writer, rep cleanup.Report) {
	for _, st := range rep.Steps {
		if len(st.Removed) > 0 {
			fmt.Fprintf(w, "removed %d %s: %s\n", len(st.Removed), cleanupNouns[st.Step], strings.Join(st.Removed, ", "))
		}
		for _, k := range st.Kept {
			fmt.Fprintf(w, "kept %s\n", k)
		}
		if st.Error != "" {
			fmt.Fprintf(w, "could not clean up %s: %s\n", cleanupNouns[st.Step], st.Error)
		}
	}
}

func faultQuoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func faultNetnsLabel(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	var netns string
	cmd := &cobra.Command{
		Use:   "status [--json] [--netns NAME]",
		Short: "List nfslab's faults with their packet and byte counters",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := openClient(ctx, g)
			if err != nil {
				return err
			}
			defer c.Close()
			fs, err := c.List(ctx, netns)
			if err != nil {
				return faultErr(err)
			}
			if asJSON {
				if fs == nil {
					fs = []netfault.Fault{}
				}
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(fs)
			}
			if len(fs) == 0 {
				fmt.Fprintf(g.stdout, "no nfslab faults in %s\n", faultNetnsLabel(netns))
				return nil
			}
			printFaultTable(g.stdout, fs, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&netns, "netns", "", "act in network namespace NAME")
	return cmd
}

func printFaultTable(w io.Writer, fs []netfault.Fault, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSELECTORS\tCREATED\tEXPIRES\tPACKETS\tBYTES\tLABEL")
	for _, f := range fs {
		pk, by := "-", "-"
		if f.Counted {
			pk, by = fmt.Sprint(f.Packets), fmt.Sprint(f.Bytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Spec.Kind, faultSelectors(f.Spec),
			f.Created.Local().Format("15:04:05"), faultExpiresIn(f.Expires, now), pk, by, f.Spec.Label)
	}
	tw.Flush()
}

func faultExpiresIn(t, now time.Time) string {
	if t.IsZero() {
		return "?"
	}
	d := t.Sub(now)
	if d <= 0 {
		return "expired"
	}
	return "in " + d.Round(time.Second).String()
}

func newWatchCmd(g *globals) *cobra.Command {
	var interval time.Duration
	var count int
	var netns string
	cmd := &cobra.Command{
		Use:   "watch [--interval 1s] [--count N] [--netns NAME]",
		Short: "Show the live counters of nfslab's faults (like watch iptables -L -v, for nfslab only)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return usage(fmt.Errorf("interval %v is not positive", interval))
			}
			if count < 0 {
				return usage(fmt.Errorf("count %d is negative", count))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, err := openClient(ctx, g)
			if err != nil {
				return err
			}
			defer c.Close()
			last := map[string]uint64{}
			for i := 0; count == 0 || i < count; i++ {
				if i > 0 {
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(interval):
					}
				}
				fs, err := c.List(ctx, netns)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return faultErr(err)
				}
				now := time.Now()
				fmt.Fprintf(g.stdout, "%s  %d fault(s) in %s\n", now.Format("15:04:05"), len(fs), faultNetnsLabel(netns))
				tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tKIND\tSELECTORS\tPACKETS\tBYTES\tDELTA\tEXPIRES")
				seen := map[string]uint64{}
				for _, f := range fs {
					if !f.Counted {
						fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t%s\n", f.ID, f.Spec.Kind, faultSelectors(f.Spec), faultExpiresIn(f.Expires, now))
						continue
					}
					delta := "+" + fmt.Sprint(f.Packets-min(last[f.ID], f.Packets))
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", f.ID, f.Spec.Kind, faultSelectors(f.Spec), f.Packets, f.Bytes, delta, faultExpiresIn(f.Expires, now))
					seen[f.ID] = f.Packets
				}
				tw.Flush()
				last = seen
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between samples")
	cmd.Flags().IntVar(&count, "count", 0, "stop after N samples (0: until interrupted)")
	cmd.Flags().StringVar(&netns, "netns", "", "act in network namespace NAME")
	return cmd
}

// newExpireCmd is the reaper the direct path starts for routes: it records
// itself with the fault, sleeps until the fault's expiry and heals it, with
// no terminal and no daemon. It ends early when the fault is healed (the
// heal signals it) and never touches a fault other than the one it was
// started for (same ID and creation time).
func newExpireCmd(g *globals) *cobra.Command {
	var id, netns, at, created string
	cmd := &cobra.Command{
		Use:    client.ExpireCommand + " --id ID --created TIME --at TIME [--netns NAME]",
		Short:  "Heal one fault at a given time (started by the direct path for routes)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			when, err := time.Parse(time.RFC3339Nano, at)
			if err != nil {
				return usage(fmt.Errorf("--at %q is not an RFC 3339 time", at))
			}
			born, err := time.Parse(time.RFC3339Nano, created)
			if err != nil {
				return usage(fmt.Errorf("--created %q is not an RFC 3339 time", created))
			}
			if id == "" {
				return usage(errors.New("--id is required"))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			r, err := openReaped(ctx, g)
			if err != nil {
				return err
			}
			rp := client.Reaper{ID: id, Netns: netns, Created: born, At: when, PID: os.Getpid()}
			if err := rp.Run(ctx, r); err != nil {
				return err
			}
			g.logger.Debug("reaper done", "id", id, "netns", netns)
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "fault ID")
	cmd.Flags().StringVar(&created, "created", "", "creation time of the fault (RFC 3339); another fault with the same ID is left alone")
	cmd.Flags().StringVar(&netns, "netns", "", "network namespace NAME")
	cmd.Flags().StringVar(&at, "at", "", "when to heal (RFC 3339)")
	return cmd
}
