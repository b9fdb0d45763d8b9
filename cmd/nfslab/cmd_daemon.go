package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

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
	var host bool
	cmd := &cobra.Command{
		Use:   "daemon [--socket PATH] [--verify-window 10s] [--netns NAME...]",
		Short: "Serve the fault API on a unix socket; heal on expiry and on SIGTERM",
		Long: `Serve nfslab's HTTP/JSON API on a unix socket (root and the socket's group only).
At start it removes what an earlier run left behind in the host namespace and
in every --netns namespace; on SIGTERM or SIGINT it heals every fault it applied.`,
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
			srv, err := daemon.New(daemon.Options{
				Injector:        inj,
				Logger:          g.logger,
				Namespaces:      namespaces,
				NoHostNamespace: !host,
				VerifyWindow:    window,
			})
			if err != nil {
				return faultErr(err)
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
	cmd.Flags().IntVar(&group, "socket-group", 0, "group ID that owns the socket; its members may use the daemon")
	return []*cobra.Command{cmd}
}
