package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfslab/nfslab/pkg/cleanup"
	"github.com/nfslab/nfslab/pkg/daemon"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// daemonInjectorKey carries, in the command's context, the injector the
// daemon should use instead of the kernel (tests).
type daemonInjectorKey struct{}

func newDaemonCmds(g *globals) []*cobra.Command {
	var window time.Duration
	var namespaces []string
	var group int
	var host, faultsOnly bool
	cmd := &cobra.Command{
		Use:   "daemon [--socket PATH] [--verify-window 10s] [--netns NAME...]",
		Short: "Serve the fault API on a unix socket; heal on expiry and on SIGTERM",
		Long: `Serve nfslab's HTTP/JSON API on a unix socket (root and the socket's group only).
At start it removes what an earlier run left behind: faults in the host
namespace and in every --netns namespace and, when it manages the host
namespace, every other nfslab object (containers, namespace names, faultfs
and NFS mounts, the netns NFS server; a faultfs whose server still runs is
kept). On SIGTERM or SIGINT it heals every fault it applied.
It also proxies /v1/faultfs/NAME/... to faultfs control sockets.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if window <= 0 {
				return usage(fmt.Errorf("verify window %v is not positive", window))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			inj, ok := cmd.Context().Value(daemonInjectorKey{}).(netfault.Injector)
			if !ok {
				var err error
				// Long-lived: Apply and Heal run one iptables process each,
				// trusting caches the daemon keeps honest with EnsureJumps.
				if inj, err = netfault.NewManager(netfault.Options{Logger: g.logger,
					StateDir: os.Getenv(StateDirEnv), LongLived: true}); err != nil {
					return err
				}
			}
			opts := daemon.Options{
				Injector:        inj,
				Logger:          g.logger,
				Namespaces:      namespaces,
				NoHostNamespace: !host,
				VerifyWindow:    window,
			}
			// Containers, mounts and servers are host objects: a daemon
			// that leaves the host namespace alone leaves them alone too.
			if host && !faultsOnly {
				co := cleanupOptions(cmd.Context(), g, nil)
				co.KeepLiveFaultfs = true // served by a running nfslab faultfs mount: no leftover
				co.KeepLiveOwners = true  // a running nfslab run's mount and JVM: no leftover
				if co.FaultfsRoot != "" {
					opts.FaultfsDir = co.FaultfsRoot
				}
				opts.Cleanup = func(ctx context.Context) (cleanup.Report, error) { return cleanup.Sweep(ctx, co) }
			}
			srv, err := daemon.New(opts)
			if err != nil {
				return faultErr(err)
			}
			if host && !faultsOnly {
				srv.Handle(daemon.NFSServerFaultPattern, daemon.NFSServerFaults(srv, netnsServerFault(storageDepsFrom(cmd.Context()).host)))
			}
			ln, err := daemon.Listen(g.socket, daemon.ListenOptions{Group: group, Logger: g.logger})
			if errors.Is(err, daemon.ErrForeignSocket) {
				return usage(err) // a wrong --socket: exit 2, nothing started
			}
			if err != nil {
				return err
			}
			return daemon.Run(ctx, srv, ln)
		},
	}
	cmd.Flags().DurationVar(&window, "verify-window", daemon.DefaultVerifyWindow, "report a fault whose counters stay at zero this long")
	cmd.Flags().StringSliceVar(&namespaces, "netns", nil, "also manage network namespace NAME (repeatable)")
	cmd.Flags().BoolVar(&host, "host-netns", true, "manage the host network namespace too (sweep it at start, list it by default)")
	cmd.Flags().BoolVar(&faultsOnly, "faults-only", false, "at start remove leftover faults only (not containers, mounts, faultfs, NFS server)")
	cmd.Flags().IntVar(&group, "socket-group", 0, "group ID that owns the socket; its members may use the daemon")
	return []*cobra.Command{cmd}
}
