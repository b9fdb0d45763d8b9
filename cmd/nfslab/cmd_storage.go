package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfslab/nfslab/pkg/doctor"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/nfsserver"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// storageDeps are the side effects of the storage commands; tests put
// fakes in the context.
type storageDeps struct {
	mounter  mount.Mounter
	resolver mount.Resolver
	host     nfsserver.Host
	probe    doctor.Probe
}

type storageDepsKey struct{}

func withStorageDeps(ctx context.Context, d storageDeps) context.Context {
	return context.WithValue(ctx, storageDepsKey{}, d)
}

func storageDepsFrom(ctx context.Context) storageDeps {
	d, _ := ctx.Value(storageDepsKey{}).(storageDeps)
	if d.mounter == nil {
		d.mounter = mount.NewLinux(mount.LinuxOptions{})
	}
	if d.resolver == nil {
		d.resolver = mount.NetResolver{}
	}
	if d.host == nil {
		d.host = nfsserver.NewHost()
	}
	if d.probe == nil {
		d.probe = doctor.NewProbe()
	}
	return d
}

// newStorageCmds returns mount, umount, doctor and nfs-server.
func newStorageCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{newMountCmd(g), newUmountCmd(g), newDoctorCmd(g), newNFSServerCmd(g)}
}

func newMountCmd(g *globals) *cobra.Command {
	var (
		opts, root     string
		disableLocalIO bool
		timeout        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "mount SERVER:/EXPORT [DIR]",
		Short: "Mount an NFS export under nfslab's mount directory (soft, bounded)",
		Long: `Mount an NFS export with the kernel's NFS client (mount(2), no helper),
resolving addr= and clientaddr= itself. DIR is a name or a path below
--mnt-root (default: derived from the source); heal and 'umount --all' find
the mount there.

Options use the mount(8) form, e.g. -o proto=tcp,port=2049,soft,timeo=10
(timeo is in tenths of a second: timeo=10 is 1.0 s).

Equivalent to: mount -t nfs4 -o OPTIONS,addr=A,clientaddr=C SERVER:/EXPORT DIR`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := mount.ParseNFSOptions(opts)
			if err != nil {
				return usage(fmt.Errorf("-o %q: %w", opts, err))
			}
			source := args[0]
			host, export, err := mount.SplitSource(source)
			if err != nil {
				return usage(err)
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			} else {
				name = defaultMountName(host, export)
			}
			target, err := mount.Target(root, name)
			if err != nil {
				return usage(err)
			}
			if timeout <= 0 {
				return usage(fmt.Errorf("--timeout %s must be positive", timeout))
			}
			d := storageDepsFrom(cmd.Context())
			// A knfsd on this host with LOCALIO on would serve this mount
			// without the network.
			if err := nfsserver.GuardLocalIO(d.host, disableLocalIO); err != nil {
				return err
			}
			if ok, err := d.mounter.IsMounted(target); err != nil {
				return err
			} else if ok {
				return fmt.Errorf("%s is already a mount point; `nfslab umount %s` first", target, target)
			}
			if err := mount.PrepareTarget(root, target); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			used, err := mount.MountNFS(ctx, d.mounter, d.resolver, source, target, o)
			if err != nil {
				return err
			}
			g.logger.Info("mounted", "source", source, "target", target, "fstype", used.FSType(), "options", used.String())
			fmt.Fprintf(g.stdout, "mounted %s on %s (%s -o %s)\n  %s\n", source, target, used.FSType(), strings.Join(used.Elements(), ","), used.Describe())
			return nil
		},
	}
	cmd.Flags().StringVarP(&opts, "options", "o", mount.DefaultNFSOptions, "NFS mount options (mount(8) form)")
	cmd.Flags().StringVar(&root, "mnt-root", mount.DefaultRoot, "nfslab's mount directory")
	cmd.Flags().BoolVar(&disableLocalIO, "disable-localio", false, "turn NFS LOCALIO off ("+nfsserver.LocalIOFix+") instead of refusing")
	cmd.Flags().DurationVar(&timeout, "timeout", mount.DefaultMountTimeout, "give up mounting after this long")
	return cmd
}

// defaultMountName turns "10.213.0.2", "/run/x" into "10.213.0.2_run_x".
func defaultMountName(host, export string) string {
	n := host + strings.ReplaceAll(strings.TrimRight(export, "/"), "/", "_")
	n = strings.NewReplacer(":", "_", "[", "", "]", "").Replace(n)
	return n
}

func newUmountCmd(g *globals) *cobra.Command {
	var (
		root    string
		timeout time.Duration
		all     bool
	)
	cmd := &cobra.Command{
		Use:   "umount [DIR]",
		Short: "Unmount an nfslab mount without hanging: plain, then force, then lazy detach",
		Long: `Unmount DIR (a name or a path below --mnt-root). Each step is bounded and the
command returns within --timeout even when the server is dead: umount2(0),
then MNT_FORCE (aborts pending NFS RPCs), then MNT_DETACH (lazy). With --all,
every mount below --mnt-root is unmounted, deepest first, and nothing else.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return usage(fmt.Errorf("--timeout %s must be positive", timeout))
			}
			if all == (len(args) == 1) {
				return usage(errors.New("give either DIR or --all"))
			}
			d := storageDepsFrom(cmd.Context())
			opts := mount.UnmountOptions{Timeout: timeout}
			if all {
				res, err := mount.Sweep(cmd.Context(), d.mounter, root, opts)
				for _, r := range res {
					if r.Err != nil {
						fmt.Fprintf(g.stdout, "%s: %v\n", r.Mount.Path, r.Err)
					} else {
						fmt.Fprintln(g.stdout, r.Result)
					}
				}
				if len(res) == 0 && err == nil {
					fmt.Fprintf(g.stdout, "no mounts below %s\n", root)
				}
				return err
			}
			target, err := mount.Target(root, args[0])
			if err != nil {
				return usage(err)
			}
			res, err := d.mounter.Unmount(cmd.Context(), target, opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, res)
			if res.Hung {
				g.logger.Warn("an unmount syscall is still blocked in the kernel", "target", target)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "mnt-root", mount.DefaultRoot, "nfslab's mount directory")
	cmd.Flags().DurationVar(&timeout, "timeout", mount.DefaultUnmountTimeout, "return within this long, detaching lazily if needed")
	cmd.Flags().BoolVar(&all, "all", false, "unmount every mount below --mnt-root")
	return cmd
}

func newDoctorCmd(g *globals) *cobra.Command {
	var (
		forExp  string
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check what this machine can run, with a fix for each problem",
		Long: `Check root, iptables (backend and the statistic, comment, time and conntrack
matches, really inserted in a throwaway network namespace), NFS client and
server in the kernel, NFS LOCALIO, FUSE, podman and its socket, runc, java,
qemu and KVM. With --for, exit non-zero naming why that experiment cannot
run here. Experiments: ` + strings.Join(doctor.ExperimentNames(), ", ") + `.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if forExp != "" {
				if _, ok := doctor.Experiments[forExp]; !ok {
					return usage(fmt.Errorf("--for %q is not an experiment (known: %s)", forExp, strings.Join(doctor.ExperimentNames(), ", ")))
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			r := doctor.Run(ctx, storageDepsFrom(cmd.Context()).probe)
			if asJSON {
				out := struct {
					doctor.Report
					Experiment string `json:"experiment,omitempty"`
					CanRun     *bool  `json:"can_run,omitempty"`
					Why        string `json:"why,omitempty"`
				}{Report: r, Experiment: forExp}
				if forExp != "" {
					err := r.Require(forExp)
					ok := err == nil
					out.CanRun = &ok
					if err != nil {
						out.Why = err.Error()
					}
				}
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else {
				printDoctor(g.stdout, r)
			}
			if forExp != "" {
				if err := r.Require(forExp); err != nil {
					return err
				}
				if !asJSON {
					fmt.Fprintf(g.stdout, "experiment %q can run here\n", forExp)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&forExp, "for", "", "exit non-zero unless this experiment can run here")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "bound on all checks together")
	return cmd
}

func printDoctor(w io.Writer, r doctor.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Status, c.Detail)
		if c.Fix != "" && c.Status != doctor.OK {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	tw.Flush()
}

type nfsServerFlags struct {
	kind           string
	netns          string
	subnet         string
	exportDir      string
	threads        int
	addr, export   string
	port           int
	disableLocalIO bool
	asJSON         bool
	timeout        time.Duration
	exportSize     string
	exportFS       string
}

func newNFSServerCmd(g *globals) *cobra.Command {
	f := &nfsServerFlags{}
	cmd := &cobra.Command{
		Use:   "nfs-server",
		Short: "Start, stop or inspect the lab NFS server (knfsd in nfslab's netns, or an external one)",
		Long: `The netns kind runs the kernel NFS server (NFSv4 only) inside nfslab's network
namespace (default nfslab-nfsd), reached from the host over a veth pair in
--subnet (host end .1, server .2), exporting --export-dir. It needs a kernel
with nfsd and nfs-kernel-server (run it in the lab VM). Stop removes
threads, export, processes, mounts, the export's dm and loop devices, veth
and namespace.

The external kind checks that ADDR:PORT answers; start prints the mount
command either way.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.kind, "kind", nfsserver.KindNetns, "server kind: netns or external")
	pf.StringVar(&f.netns, "netns", nfsserver.DefaultNetns, "netns kind: network namespace name")
	pf.StringVar(&f.subnet, "subnet", nfsserver.DefaultSubnet.String(), "netns kind: the veth pair's IPv4 /30")
	pf.StringVar(&f.exportDir, "export-dir", "", "netns kind: exported directory (default "+nfsserver.DefaultExport+"/NETNS)")
	pf.IntVar(&f.threads, "threads", nfsserver.DefaultThreads, "netns kind: knfsd threads")
	pf.StringVar(&f.exportSize, "export-size", "", "netns kind: bound the export to a filesystem of this size (e.g. 256MB), so that `nfs-server fill` can fill it")
	pf.StringVar(&f.exportFS, "export-fs", "", "netns kind, with --export-size: tmpfs (default) or ext4 (on a loop device through the dm device nfslab-NETNS-export, so that `nfs-server eio` can fail its sectors)")
	pf.StringVar(&f.addr, "addr", "", "external kind: server address")
	pf.StringVar(&f.export, "export", "/", "external kind: exported path")
	pf.IntVar(&f.port, "port", nfsserver.NFSPort, "external kind: NFS port")
	pf.BoolVar(&f.disableLocalIO, "disable-localio", false, "turn NFS LOCALIO off ("+nfsserver.LocalIOFix+") instead of refusing")
	pf.BoolVar(&f.asJSON, "json", false, "print JSON")
	pf.DurationVar(&f.timeout, "timeout", 2*time.Minute, "bound on the whole command")

	start := &cobra.Command{Use: "start", Short: "Start the server and print how to mount it", Args: subNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := f.server(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			ep, err := srv.Start(ctx)
			if err != nil {
				return err
			}
			if f.asJSON {
				return json.NewEncoder(g.stdout).Encode(ep)
			}
			fmt.Fprintf(g.stdout, "%s NFS server serving %s (port %d)\nmount it with:\n  nfslab mount %s NAME -o %s\n",
				srv.Kind(), ep.Source(), ep.Port, ep.Source(), ep.MountOptions())
			return nil
		}}
	stop := &cobra.Command{Use: "stop", Short: "Stop the server and remove everything nfslab created for it", Args: subNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := f.server(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			if err := srv.Stop(ctx); err != nil {
				return err
			}
			if srv.Kind() == nfsserver.KindExternal {
				fmt.Fprintln(g.stdout, "external server: nothing of nfslab's to stop")
			} else {
				fmt.Fprintf(g.stdout, "netns NFS server %s stopped and removed\n", f.netns)
			}
			return nil
		}}
	status := &cobra.Command{Use: "status", Short: "Show the netns server's state", Args: subNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := f.server(cmd.Context())
			if err != nil {
				return err
			}
			ns, ok := srv.(*nfsserver.NetnsServer)
			if !ok {
				return usage(errors.New("status applies to --kind netns; for an external server use `nfs-server start --kind external` to check it"))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			st := ns.Status(ctx)
			if f.asJSON {
				return json.NewEncoder(g.stdout).Encode(st)
			}
			fmt.Fprintf(g.stdout, "netns %s: namespace %v, veth %v, knfsd threads %d, running %v\n", ns.Config().Name, st.Netns, st.Veth, st.Threads, st.Running)
			for _, e := range st.Exports {
				fmt.Fprintf(g.stdout, "  export %s\n", e)
			}
			if len(st.PIDs) > 0 {
				fmt.Fprintf(g.stdout, "  processes in the namespace: %v\n", st.PIDs)
			}
			for _, p := range st.Problems {
				fmt.Fprintf(g.stdout, "  problem: %s\n", p)
			}
			if st.Running {
				fmt.Fprintf(g.stdout, "  mount: nfslab mount %s NAME -o %s\n", st.Endpoint.Source(), st.Endpoint.MountOptions())
			}
			return nil
		}}
	cmd.AddCommand(start, stop, status)
	cmd.AddCommand(newServerFaultCmds(g, f)...)
	return cmd
}

// subNoArgs is noArgs as a usage error, for subcommands addAll does not wrap.
func subNoArgs(cmd *cobra.Command, args []string) error { return usage(noArgs(cmd, args)) }

// server validates the flags (usage errors) and builds the server.
func (f *nfsServerFlags) server(ctx context.Context) (nfsserver.Server, error) {
	if f.timeout <= 0 {
		return nil, usage(fmt.Errorf("--timeout %s must be positive", f.timeout))
	}
	h := storageDepsFrom(ctx).host
	switch f.kind {
	case nfsserver.KindNetns:
		if f.threads < 1 {
			return nil, usage(fmt.Errorf("--threads %d must be at least 1", f.threads))
		}
		subnet, err := netip.ParsePrefix(f.subnet)
		if err != nil {
			return nil, usage(fmt.Errorf("--subnet %q is not a CIDR prefix like 10.213.0.0/30", f.subnet))
		}
		var size scenario.Size
		if f.exportSize != "" {
			if size, err = scenario.ParseSize(f.exportSize); err != nil {
				return nil, usage(fmt.Errorf("--export-size %q: %w", f.exportSize, err))
			}
		}
		s, err := nfsserver.NewNetns(nfsserver.NetnsConfig{Name: f.netns, Subnet: subnet, ExportDir: f.exportDir,
			Threads: f.threads, DisableLocalIO: f.disableLocalIO, ExportSize: int64(size), ExportFS: f.exportFS}, h)
		if err != nil {
			return nil, usage(err)
		}
		return s, nil
	case nfsserver.KindExternal:
		if f.addr == "" {
			return nil, usage(errors.New("--kind external needs --addr"))
		}
		if f.port < 1 || f.port > 65535 {
			return nil, usage(fmt.Errorf("--port %d is out of range 1..65535", f.port))
		}
		s, err := nfsserver.NewExternal(nfsserver.ExternalConfig{Addr: f.addr, Port: f.port, Export: f.export, DisableLocalIO: f.disableLocalIO}, h)
		if err != nil {
			return nil, usage(err)
		}
		return s, nil
	default:
		return nil, usage(fmt.Errorf("--kind %q is not netns or external", f.kind))
	}
}
