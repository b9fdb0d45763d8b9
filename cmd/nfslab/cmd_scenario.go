package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/backends"
	"github.com/nfslab/nfslab/pkg/cleanup"
	"github.com/nfslab/nfslab/pkg/collect"
	"github.com/nfslab/nfslab/pkg/container/podman"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/live"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/nfsserver"
	"github.com/nfslab/nfslab/pkg/report"
	"github.com/nfslab/nfslab/pkg/scenario"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster"
	"github.com/spf13/cobra"
)

// backendsKey lets tests run `nfslab run` against in-memory backends.
type backendsKey struct{}

type backendsFactory func(ctx context.Context, sc *scenario.Scenario, runDir string) (engine.Backends, error)

func withBackends(ctx context.Context, f backendsFactory) context.Context {
	return context.WithValue(ctx, backendsKey{}, f)
}

type runFlags struct {
	dryRun, untilFail, failFast, noLive bool
	repeat, maxRuns                     int
	out, probeCache                     string
	sets                                []string
}

func newScenarioCmds(g *globals) []*cobra.Command {
	var f runFlags
	run := &cobra.Command{
		Use:   "run SCENARIO.yaml",
		Short: "Run a scenario: storage, target, load, a timeline of faults, and a verdict",
		Long: `Run a scenario file (see docs/scenarios.md and scenarios/).

The scenario is validated before anything is touched. --dry-run prints the
plan: every step with its offset or event, each network fault as the exact
rules it creates, the expectations and the rollbacks.

A run writes runs/<scenario>-<timestamp>/ with journal.jsonl, report.md,
report.html and logs/. Faults go through the daemon when it runs and are
applied in-process otherwise; either way they carry nfslab's tags, so after a
crash 'nfslab heal --all' removes them. Ctrl-C rolls back and exits 130.

Exit status: 0 when every expectation held, 1 when one failed or the run
failed, 2 for an invalid scenario or flags.`,
		Example: `  nfslab run scenarios/faultfs-full-drop.yaml
  nfslab run --dry-run scenarios/nfs-localhost-pitfall.yaml
  nfslab run scenarios/nfs-random-drop-80.yaml --set target.kind=zeebe
  nfslab run scenarios/faultfs-drop-on-replay.yaml --until-fail --max-runs 20`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runScenario(cmd, g, &f, args[0]) },
	}
	fl := run.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "validate and print the plan; touch nothing")
	fl.IntVar(&f.repeat, "repeat", 1, "run the scenario N times")
	fl.BoolVar(&f.untilFail, "until-fail", false, "run again and again until a run fails (at most --max-runs)")
	fl.IntVar(&f.maxRuns, "max-runs", 100, "bound for --until-fail")
	fl.BoolVar(&f.failFast, "fail-fast", false, "end a run as soon as one expectation failed")
	fl.StringVar(&f.out, "out", "runs", "directory for run directories")
	fl.StringArrayVar(&f.sets, "set", nil, "override a scenario field, KEY=VALUE with KEY a dotted path (target.kind=zeebe); repeatable")
	fl.StringVar(&f.probeCache, "probe-cache", "", "where the compiled JVM probe is cached (default /var/cache/nfslab/probe)")
	fl.BoolVar(&f.noLive, "no-live", false, "plain line output even on a terminal")

	var extra []string
	coll := &cobra.Command{
		Use:   "collect RUN-DIR",
		Short: "Bundle a run's journal, logs, hs_err files, data directory and the machine's fault state into RUN-DIR/collect-<ts>.tar.gz",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if st, err := os.Stat(args[0]); err != nil || !st.IsDir() {
				return usage(fmt.Errorf("run directory %q does not exist", args[0]))
			}
			out, err := collect.Collect(ctxOf(cmd), args[0], collect.Options{DataDirs: extra})
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, out)
			return nil
		},
	}
	coll.Flags().StringArrayVar(&extra, "data", nil, "another data directory to include (e.g. a live mount); repeatable")
	return []*cobra.Command{run, coll}
}

func ctxOf(cmd *cobra.Command) context.Context {
	if c := cmd.Context(); c != nil {
		return c
	}
	return context.Background()
}

func runScenario(cmd *cobra.Command, g *globals, f *runFlags, path string) error {
	if f.untilFail && cmd.Flags().Changed("repeat") {
		return usage(errors.New("--repeat and --until-fail exclude each other"))
	}
	if f.repeat < 1 || f.repeat > 10000 {
		return usage(fmt.Errorf("--repeat %d is out of range (1-10000)", f.repeat))
	}
	if f.maxRuns < 1 || f.maxRuns > 10000 {
		return usage(fmt.Errorf("--max-runs %d is out of range (1-10000)", f.maxRuns))
	}
	sc, err := scenario.LoadFile(path, f.sets...)
	if err != nil {
		if errors.Is(err, scenario.ErrInvalid) {
			return usage(err)
		}
		return err
	}
	ctx := ctxOf(cmd)
	if f.dryRun {
		return printScenarioPlan(ctx, g, sc)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	build, _ := ctx.Value(backendsKey{}).(backendsFactory)
	if build == nil {
		roots := cleanup.RootsAt(cmp.Or(g.root, cleanup.DefaultRoot))
		records := proctrack.NewStore(roots.Records)
		// The podman service the run's containers (an NFS server, Zeebe
		// brokers) talk to: the machine's, or nfslab's own for the command
		// when none runs (the lab VM has no systemd to start one).
		pod := &podman.Session{Records: records}
		defer func() {
			if err := pod.Close(); err != nil {
				g.logger.Warn("stopping nfslab's podman service", "err", err)
			}
		}()
		build = func(ctx context.Context, sc *scenario.Scenario, runDir string) (engine.Backends, error) {
			return backends.Build(ctx, sc, backends.Config{
				RunDir: runDir, ProbeCache: f.probeCache, Logger: g.logger,
				Zeebe:       cluster.Options{Runtime: pod.Runtime},
				FaultfsRoot: roots.Faultfs, Records: records,
				Faults: func(ctx context.Context) (netfault.Faults, error) {
					c, err := openClient(ctx, g)
					if err != nil {
						return nil, err
					}
					fmt.Fprintf(g.stderr, "network faults: %s client\n", c.Mode())
					return c, nil
				},
			})
		}
	}
	runs := f.repeat
	if f.untilFail {
		runs = f.maxRuns
	}
	failed := 0
	for i := 1; i <= runs; i++ {
		iter := 0
		if runs > 1 {
			iter = i
			fmt.Fprintf(g.stdout, "=== run %d/%d of %s\n", i, runs, sc.Metadata.Name)
		}
		r, err := runOnce(ctx, g, f, sc, iter, build)
		if err != nil {
			return err
		}
		res := r.Result
		printSummary(g.stdout, sc, r)
		if res.Interrupted {
			return exitError{130, errors.New("interrupted; rolled back")}
		}
		if !res.Passed {
			failed++
			if f.untilFail {
				return exitError{1, fmt.Errorf("run %d of %s failed: %s (run directory %s)", i, sc.Metadata.Name, res.Reason, r.Dir)}
			}
		}
	}
	if failed > 0 {
		return exitError{1, fmt.Errorf("%d of %d run(s) of %s failed", failed, runs, sc.Metadata.Name)}
	}
	if f.untilFail {
		fmt.Fprintf(g.stdout, "all %d runs passed (--max-runs reached)\n", runs)
	}
	return nil
}

func runOnce(ctx context.Context, g *globals, f *runFlags, sc *scenario.Scenario, iter int, build backendsFactory) (*backends.Run, error) {
	opts := engine.Options{Logger: g.logger, FailFast: f.failFast}
	var view *live.View
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	viewDone := make(chan struct{})
	if !f.noLive && live.IsTerminal(g.stdout) {
		view = &live.View{W: g.stdout}
		if live.IsTerminal(g.stderr) {
			// Logs printed under the panel would push it down and leave
			// stale copies of it: they go above it for the run.
			defer func(l *slog.Logger, w io.Writer) { g.logger, g.stderr = l, w }(g.logger, g.stderr)
			g.stderr = view.Log()
			g.logger = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: g.level}))
			opts.Logger = g.logger
		}
		opts.OnEvent = view.Note
		opts.OnStart = func(r *engine.Runner) {
			view.Attach(r)
			go func() { view.Run(vctx); close(viewDone) }()
		}
	} else {
		opts.OnEvent = live.Plain(g.stdout)
		close(viewDone)
	}
	r, err := backends.Execute(ctx, sc, f.out, iter, opts, func(ctx context.Context, dir string) (engine.Backends, error) {
		return build(ctx, sc, dir)
	}, report.WriteDir)
	vcancel()
	if view != nil && opts.OnStart != nil {
		select {
		case <-viewDone:
		case <-time.After(2 * time.Second):
		}
	}
	if err != nil {
		if r != nil && r.Result != nil {
			// The run happened; only the report failed.
			fmt.Fprintf(g.stderr, "nfslab: %v\n", err)
			return r, nil
		}
		return nil, err
	}
	return r, nil
}

func printSummary(w io.Writer, sc *scenario.Scenario, r *backends.Run) {
	res := r.Result
	verdict := "PASS"
	if !res.Passed {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\n%s %s: %s\n", verdict, sc.Metadata.Name, res.Reason)
	if res.Err != nil {
		fmt.Fprintf(w, "  error: %v\n", res.Err)
	}
	for _, v := range res.Verdicts {
		mark := map[engine.State]string{engine.Held: "held  ", engine.Failed: "FAILED", engine.Pending: "open  "}[v.State]
		if v.Skipped {
			mark = "skip  "
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, v.Name, v.Detail)
	}
	fmt.Fprintf(w, "  step start lag over %d steps: p50 %v, p99 %v, max %v\n", res.Lag.N, res.Lag.P50, res.Lag.P99, res.Lag.Max)
	if len(res.RolledBack) > 0 {
		fmt.Fprintf(w, "  rolled back: %s\n", strings.Join(res.RolledBack, ", "))
	}
	fmt.Fprintf(w, "  run directory: %s\n", r.Dir)
	for _, n := range []string{report.MarkdownName, report.HTMLName} {
		if _, err := os.Stat(filepath.Join(r.Dir, n)); err == nil {
			fmt.Fprintf(w, "  %s\n", filepath.Join(r.Dir, n))
		}
	}
}

// printScenarioPlan prints what a run would do. The rules come from the fault
// injector's Plan (pure: it renders, it applies nothing); $references are
// shown with the netns server's real address or documentation addresses.
func printScenarioPlan(ctx context.Context, g *globals, sc *scenario.Scenario) error {
	var planner interface {
		Plan(context.Context, netfault.Spec) (netfault.Plan, error)
	}
	if backends.NeedsFaults(sc) {
		if inj, err := newInjector(g); err == nil {
			planner = inj
		} else {
			fmt.Fprintf(g.stderr, "nfslab: cannot render exact rules here (%v); showing the fault specs\n", err)
		}
	}
	resolve := func(text string) (string, error) {
		ref, err := scenario.ParseRef(text)
		if err != nil {
			return "", err
		}
		switch ref.Kind {
		case scenario.RefNFSServer:
			if sv := sc.Storage.Server; sv != nil {
				switch sv.Kind {
				case scenario.ServerExternal:
					return sv.Address, nil
				case scenario.ServerNetns:
					return nfsserver.NetnsConfig{}.WithDefaults().ServerAddr().String(), nil
				}
			}
			return "192.0.2.1", nil
		case scenario.RefBroker:
			return fmt.Sprintf("192.0.2.1%d", ref.N), nil
		default: // scenario.RefLeader
			return fmt.Sprintf("192.0.2.2%d", ref.N), nil
		}
	}
	if err := engine.PrintPlan(ctx, g.stdout, sc, planner, resolve); err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, "(dry run: nothing was touched; $broker:N and $leader:P are shown as 192.0.2.x placeholders, resolved from the topology at run time)")
	return nil
}
