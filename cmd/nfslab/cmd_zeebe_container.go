package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/container/podman"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster"
)

// podmanOpts select the podman service the zeebe commands talk to.
type podmanOpts struct {
	uri          string
	startService bool
}

// connectFunc returns a Runtime and a function that releases it (stopping
// a service started for the command).
type connectFunc func(ctx context.Context, o podmanOpts, g *globals) (container.Runtime, func(), error)

func connectPodman(ctx context.Context, o podmanOpts, g *globals) (container.Runtime, func(), error) {
	s := &podman.Session{URI: o.uri, Own: podman.OwnNever}
	if o.startService {
		s.Own = podman.OwnAlways
	}
	rt, err := s.Runtime(ctx)
	if err != nil {
		return nil, nil, err
	}
	if svc := s.Started(); svc != nil {
		g.logger.Info("started podman service for this command", "pid", svc.PID(), "uri", svc.URI)
	}
	return rt, func() {
		if err := s.Close(); err != nil {
			g.logger.Warn("stopping podman service", "err", err)
		}
	}, nil
}

func addPodmanFlags(c *cobra.Command, o *podmanOpts) {
	c.Flags().StringVar(&o.uri, "podman", "", "podman service URI (default $CONTAINER_HOST or "+podman.DefaultSocket+")")
	c.Flags().BoolVar(&o.startService, "start-service", false, "start a podman service (runtime runc) for this command and stop it after")
}

// newZeebeContainerCmds returns `zeebe up`, `zeebe down` and `zeebe logs`.
func newZeebeContainerCmds(g *globals) []*cobra.Command {
	return zeebeContainerCmds(g, connectPodman)
}

func zeebeContainerCmds(g *globals, connect connectFunc) []*cobra.Command {
	return []*cobra.Command{zeebeUpCmd(g, connect), zeebeDownCmd(g, connect), zeebeLogsCmd(g, connect)}
}

func zeebeUpCmd(g *globals, connect connectFunc) *cobra.Command {
	var (
		z         container.ZeebeSpec
		env       []string
		waitReady time.Duration
		pull      string
		po        podmanOpts
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a Zeebe broker whose data directory is on the storage under test",
		Long: `Start a Zeebe broker in podman with --data bind-mounted at /usr/local/zeebe/data
and ports 26500 and 9600 published on 127.0.0.1, tuned as in the NFS workshop
(16MB log segments, 8h snapshot period, 2 CPU and 2 IO threads), then wait for
http://127.0.0.1:9600/actuator/health/readiness. The container carries
nfslab's labels, so "nfslab zeebe down --all" and "nfslab heal" find it.`,
		Example: `  nfslab zeebe up --data /run/nfslab/mnt/nfs
  nfslab zeebe up --data /mnt/faultfs --image camunda/zeebe:8.7.5 --env ZEEBE_LOG_LEVEL=debug`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			extra, err := parseEnv(env)
			if err != nil {
				return usage(err)
			}
			z.Env = extra
			z = z.WithDefaults()
			if err := z.Validate(); err != nil {
				return usage(err)
			}
			if waitReady < 0 {
				return usage(fmt.Errorf("--wait-ready %s is negative", waitReady))
			}
			if pull != container.PullMissing && pull != container.PullNever {
				return usage(fmt.Errorf("--pull %q is not missing or never", pull))
			}
			if st, err := os.Stat(z.DataDir); err != nil || !st.IsDir() {
				return usage(fmt.Errorf("--data %s is not a directory: %v", z.DataDir, err))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rt, release, err := connect(ctx, po, g)
			if err != nil {
				return err
			}
			defer release()
			id, err := cluster.StartBroker(ctx, rt, z, container.PullOptions{Policy: pull, Progress: g.stderr, Hint: "or pass --image"})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "started %s (%.12s) from %s, data %s\n", z.Name, id, z.Image, z.DataDir)
			if waitReady == 0 {
				return nil
			}
			url := z.ReadinessURL()
			if err := cluster.WaitBroker(ctx, rt, z.Name, url, container.ReadyOptions{Timeout: waitReady}); err != nil {
				printLogTail(ctx, rt, z.Name, g, 30)
				return err
			}
			fmt.Fprintf(g.stdout, "ready: %s\n", url)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&z.Image, "image", container.DefaultZeebeImage, "Zeebe image (e.g. camunda/zeebe:8.7.5)")
	f.StringVar(&z.DataDir, "data", "", "host directory mounted at /usr/local/zeebe/data (NFS mount or faultfs mountpoint)")
	f.StringVar(&z.Name, "name", container.DefaultZeebeName, "container name")
	f.StringArrayVar(&env, "env", nil, "extra environment variable K=V (repeatable)")
	f.StringVar(&z.LogSegmentSize, "segment-size", "16MB", "ZEEBE_BROKER_DATA_LOGSEGMENTSIZE (\"\" for Zeebe's default)")
	f.StringVar(&z.SnapshotPeriod, "snapshot-period", "8h", "ZEEBE_BROKER_DATA_SNAPSHOTPERIOD (\"\" for Zeebe's default)")
	f.IntVar(&z.CPUThreads, "cpu-threads", 2, "ZEEBE_BROKER_THREADS_CPUTHREADCOUNT (0 for Zeebe's default)")
	f.IntVar(&z.IOThreads, "io-threads", 2, "ZEEBE_BROKER_THREADS_IOTHREADCOUNT (0 for Zeebe's default)")
	f.DurationVar(&waitReady, "wait-ready", 2*time.Minute, "wait this long for readiness (0: do not wait)")
	f.StringVar(&z.Network, "network", "", "bridge (default; ports published on 127.0.0.1) or host")
	f.StringVar(&z.RunID, "run-id", "", "value of the io.nfslab.run label")
	f.StringVar(&pull, "pull", container.PullMissing, "missing: pull when not in local storage; never: fail instead")
	addPodmanFlags(cmd, &po)
	return cmd
}

func printLogTail(ctx context.Context, rt container.Runtime, name string, g *globals, n int) {
	fmt.Fprintf(g.stderr, "last %d log lines of %s:\n", n, name)
	_ = rt.Logs(context.WithoutCancel(ctx), name, container.LogOptions{Tail: n}, func(l container.LogLine) {
		fmt.Fprintln(g.stderr, "  "+l.Text)
	})
}

func parseEnv(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env %q is not K=V", kv)
		}
		out[k] = v
	}
	return out, nil
}

func zeebeDownCmd(g *globals, connect connectFunc) *cobra.Command {
	var (
		name  string
		all   bool
		runID string
		po    podmanOpts
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop and remove nfslab's Zeebe broker container(s)",
		Long: `Stop and remove the broker named --name (default nfslab-zeebe), or with --all
every container labelled io.nfslab.role=zeebe (of --run-id, if given).
Containers without nfslab's labels are never touched; one already gone
counts as removed.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all && cmd.Flags().Changed("name") {
				return usage(errors.New("--name and --all exclude each other"))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rt, release, err := connect(ctx, po, g)
			if err != nil {
				return err
			}
			defer release()
			var removed []string
			if all {
				removed, err = cluster.RemoveAll(ctx, rt, runID, nil)
			} else {
				removed, err = cluster.RemoveBroker(ctx, rt, name)
				if errors.Is(err, container.ErrNotFound) {
					fmt.Fprintf(g.stdout, "%s: not found, nothing to do\n", name)
					return nil
				}
			}
			for _, n := range removed {
				fmt.Fprintf(g.stdout, "removed %s\n", n)
			}
			if all && len(removed) == 0 && err == nil {
				fmt.Fprintln(g.stdout, "no nfslab zeebe containers")
			}
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", container.DefaultZeebeName, "container to remove")
	cmd.Flags().BoolVar(&all, "all", false, "remove every nfslab zeebe container")
	cmd.Flags().StringVar(&runID, "run-id", "", "with --all: only containers of this run")
	addPodmanFlags(cmd, &po)
	return cmd
}

func zeebeLogsCmd(g *globals, connect connectFunc) *cobra.Command {
	var (
		name   string
		follow bool
		tailN  int
		po     podmanOpts
	)
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Print (or follow) the broker's log, stdout and stderr",
		Example: `  nfslab zeebe logs --follow
  nfslab zeebe logs --name nfslab-zeebe | nfslab detect -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tailN < 0 {
				return usage(fmt.Errorf("--tail %d is negative", tailN))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rt, release, err := connect(ctx, po, g)
			if err != nil {
				return err
			}
			defer release()
			err = rt.Logs(ctx, name, container.LogOptions{Follow: follow, Tail: tailN}, func(l container.LogLine) {
				w := g.stdout
				if l.Stream == container.Stderr {
					w = g.stderr
				}
				fmt.Fprintln(w, l.Text)
			})
			if errors.Is(err, context.Canceled) {
				return nil // Ctrl-C ends a follow
			}
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", container.DefaultZeebeName, "container name")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the container exits or Ctrl-C")
	cmd.Flags().IntVar(&tailN, "tail", 0, "start with the last N lines (0: all)")
	addPodmanFlags(cmd, &po)
	return cmd
}
