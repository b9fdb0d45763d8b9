package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/load"
	"github.com/nfslab/nfslab/pkg/zeebe"
)

// newZeebeLoadCmds returns `zeebe load`.
func newZeebeLoadCmds(g *globals) []*cobra.Command {
	var (
		gateway  string
		rate     string
		duration time.Duration
		workers  int
		insecure bool
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Deploy the one-task process, create instances at a rate and complete their jobs",
		Long: `Deploy nfslab's one-task process (id "benchmark", job type "benchmark-task"),
create instances at --rate and run --workers workers that complete each job
with {"result":"Pong"}, as the NFS workshop did with zbctl. Prints one line
per second: instances created, jobs completed, errors by gRPC code,
create latency percentiles and creations per partition. Stops after
--duration, or on Ctrl-C.`,
		Example: `  nfslab zeebe load --gateway 127.0.0.1:26500 --insecure
  nfslab zeebe load --gateway 127.0.0.1:26500 --insecure --rate 100/s --workers 4 --duration 1m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := load.ParseRate(rate)
			if err != nil {
				return usage(err)
			}
			cfg := load.Config{Rate: r, Duration: duration, Workers: workers, NoWorkers: workers == 0, Logger: g.logger}
			if workers < 0 {
				return usage(fmt.Errorf("--workers %d is negative", workers))
			}
			if duration < 0 {
				return usage(fmt.Errorf("--duration %s is negative", duration))
			}
			if err := cfg.WithDefaults().Validate(); err != nil {
				return usage(err)
			}
			if strings.TrimSpace(gateway) == "" {
				return usage(errors.New("--gateway is empty"))
			}
			c, err := zeebe.Dial(zeebe.Config{Address: gateway, Insecure: insecure})
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			out := g.stdout
			enc := json.NewEncoder(out)
			cfg.OnSample = func(s journal.LoadSample) {
				if asJSON {
					_ = enc.Encode(s)
					return
				}
				fmt.Fprintln(out, formatSample(s))
			}
			cfg.OnReady = func(s load.Summary) {
				if !asJSON {
					printTopology(out, s)
				}
			}
			if !asJSON {
				fmt.Fprintf(out, "load: gateway %s, rate %s, workers %d\n", gateway, load.FormatRate(r), cfg.WithDefaults().Workers)
			}
			sum, err := load.Run(ctx, c, cfg)
			if err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(out, "total: created=%d completed=%d skipped=%d errors=%s partitions=%s in %s\n",
					sum.Created, sum.Completed, sum.Skipped, formatCounts(sum.Errors), formatPartitions(sum.ByPartition),
					sum.End.Sub(sum.Start).Round(time.Millisecond))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&gateway, "gateway", "127.0.0.1:26500", "Zeebe gateway address host:port")
	f.StringVar(&rate, "rate", "0.2/s", "instances to create: 0.2/s, 300/m, 1/5s")
	f.DurationVar(&duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	f.IntVar(&workers, "workers", 1, "job workers completing benchmark-task jobs (0: none)")
	f.BoolVar(&insecure, "insecure", false, "plaintext gRPC, as zbctl --insecure")
	f.BoolVar(&asJSON, "json", false, "print samples as JSON lines (journal load-sample payloads)")
	return []*cobra.Command{cmd}
}

func formatSample(s journal.LoadSample) string {
	line := fmt.Sprintf("%s created=%d completed=%d errors=%s", s.T.Format("15:04:05"), s.Created, s.Completed, formatCounts(s.Errors))
	if s.Skipped > 0 {
		line += fmt.Sprintf(" skipped=%d", s.Skipped)
	}
	if s.LatencyP50 > 0 {
		line += fmt.Sprintf(" p50=%s p95=%s p99=%s", roundLatency(s.LatencyP50), roundLatency(s.LatencyP95), roundLatency(s.LatencyP99))
	}
	if len(s.ByPartition) > 0 {
		line += " partitions=" + formatPartitions(s.ByPartition)
	}
	return line
}

func roundLatency(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

func formatPartitions(m map[int32]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]int32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

func printTopology(w io.Writer, s load.Summary) {
	if s.TopologyErr != "" {
		fmt.Fprintf(w, "topology: %s\n", s.TopologyErr)
		return
	}
	t := s.Topology
	fmt.Fprintf(w, "topology: cluster size %d, %d partitions, replication factor %d, gateway %s\n",
		t.ClusterSize, t.PartitionsCount, t.ReplicationFactor, t.GatewayVersion)
	for _, b := range t.Brokers {
		fmt.Fprintf(w, "  broker %d %s:%d", b.NodeID, b.Host, b.Port)
		for _, p := range b.Partitions {
			fmt.Fprintf(w, "  p%d %s %s", p.ID, p.Role, p.Health)
		}
		fmt.Fprintln(w)
	}
}
