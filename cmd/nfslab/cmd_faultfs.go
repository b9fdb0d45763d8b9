package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/cleanup"
	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/faultfs"
	"github.com/nfslab/nfslab/pkg/probe"
)

// faultfsDir holds nfslab's faultfs mountpoints and control sockets.
const faultfsDir = "/run/nfslab/faultfs"

var faultfsNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func newFaultfsCmds(g *globals) []*cobra.Command {
	ffs := &cobra.Command{Use: "faultfs", Short: "A FUSE passthrough filesystem whose operations fail or stall on command"}
	ffs.AddCommand(newFaultfsMountCmd(g), newFaultfsSetCmd(g), newFaultfsClearCmd(g),
		newFaultfsListCmd(g), newFaultfsDropCacheCmd(g))
	pr := &cobra.Command{Use: "probe", Short: "Build and run the JVM journal probe (mmap segments, force, CRC32C replay)"}
	pr.AddCommand(newProbeRunCmd(g), newProbeBuildCmd(g))
	return []*cobra.Command{ffs, pr}
}

// faultfsTarget resolves --name/--control to the control socket path.
type faultfsTarget struct{ name, control string }

func (t *faultfsTarget) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.name, "name", "", "faultfs instance name (its socket is "+faultfsDir+"/NAME.sock)")
	cmd.Flags().StringVar(&t.control, "control", "", "control socket (default "+faultfsDir+"/NAME.sock)")
}

func (t *faultfsTarget) socket() (string, error) {
	if t.control != "" {
		return t.control, nil
	}
	if t.name == "" {
		return "", usage(errors.New("--name or --control is required"))
	}
	if !faultfsNameRE.MatchString(t.name) {
		return "", usage(fmt.Errorf("name %q must be 1-64 letters, digits, '.', '_' or '-'", t.name))
	}
	return filepath.Join(faultfsDir, t.name+".sock"), nil
}

func (t *faultfsTarget) client() (*faultfs.Client, error) {
	s, err := t.socket()
	if err != nil {
		return nil, err
	}
	return faultfs.NewUnixClient(s), nil
}

// faultfsAPIErr maps API errors: bad input is a usage error (exit 2).
func faultfsAPIErr(err error) error {
	if errors.Is(err, faultfs.ErrInvalid) {
		return usage(err)
	}
	return err
}

func newFaultfsMountCmd(g *globals) *cobra.Command {
	var (
		t    faultfsTarget
		opts faultfs.Options
	)
	cmd := &cobra.Command{
		Use:   "mount BACKING [MOUNTPOINT]",
		Short: "Mount a fault filesystem over BACKING and serve its control socket until SIGINT/SIGTERM",
		Long: `Mounts a FUSE passthrough of BACKING at MOUNTPOINT (default ` + faultfsDir + `/NAME)
and serves the rule API on the control socket (default ` + faultfsDir + `/NAME.sock).
Runs in the foreground; SIGINT or SIGTERM unmounts (lazily if the mount is busy).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			backing := args[0]
			if t.name == "" {
				t.name = filepath.Base(filepath.Clean(backing))
			}
			sock, err := t.socket()
			if err != nil {
				return err
			}
			if opts.KeepCache && opts.DirectIO {
				return usage(errors.New("--keep-cache and --direct-io exclude each other"))
			}
			if opts.AttrTimeout < 0 || opts.EntryTimeout < 0 {
				return usage(fmt.Errorf("timeouts must not be negative: attr %v, entry %v", opts.AttrTimeout, opts.EntryTimeout))
			}
			if st, err := os.Stat(backing); err != nil || !st.IsDir() {
				return usage(fmt.Errorf("backing %q is not a directory", backing))
			}
			mnt := filepath.Join(faultfsDir, t.name)
			if len(args) == 2 {
				mnt = args[1]
			}
			opts.Logger = g.logger
			cfg := faultfs.ServerConfig{Name: t.name, Backing: backing, Mountpoint: mnt, Socket: sock, Options: opts,
				Records: proctrack.NewStore(cleanup.RootsAt(cmp.Or(g.root, cleanup.DefaultRoot)).Records)}
			var mounted string
			err = faultfs.Serve(cmd.Context(), cfg, func(s *faultfs.Server) {
				mounted = s.FS().Mountpoint()
				fmt.Fprintf(g.stdout, "faultfs %s: %s mounted on %s, control socket %s\n", t.name, s.FS().Backing(), mounted, sock)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "faultfs %s: unmounted %s\n", t.name, mounted)
			return nil
		},
	}
	t.flags(cmd)
	f := cmd.Flags()
	f.BoolVar(&opts.KeepCache, "keep-cache", false, "keep page cache across opens (cached pages never see read faults)")
	f.BoolVar(&opts.DirectIO, "direct-io", false, "bypass the page cache (every read/write faults; mmap fails)")
	f.BoolVar(&opts.Writeback, "writeback", false, "enable the kernel writeback cache (write(2) faults surface at fsync)")
	f.DurationVar(&opts.AttrTimeout, "attr-timeout", 0, "attribute cache time (0: every getattr reaches the rules)")
	f.DurationVar(&opts.EntryTimeout, "entry-timeout", 0, "lookup cache time (0: every lookup reaches the rules)")
	return cmd
}

func newFaultfsSetCmd(g *globals) *cobra.Command {
	var (
		t                   faultfsTarget
		op, errno, glob, id string
		prob                float64
		latency             time.Duration
		count, off, length  int64
	)
	names := faultfs.OpNames()
	cmd := &cobra.Command{
		Use:   "set --name N --op OP [--errno E] [--path GLOB] [--prob P] [--latency D] [--count N]",
		Short: "Add (or replace, with --id) a fault rule",
		Example: `  nfslab faultfs set --name zeebe --op fsync --errno EIO
  nfslab faultfs set --name zeebe --op read --path '**/*.log' --errno EIO --prob 0.2
  nfslab faultfs set --name zeebe --op any --latency 1h     # a hung server`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := faultfs.ParseErrno(errno)
			if err != nil {
				return usage(err)
			}
			r := faultfs.Rule{ID: id, Op: faultfs.Op(op), PathGlob: glob, Errno: e, Prob: prob,
				Latency: duration.Duration(latency), Count: count, Offset: off, Length: length}
			if !cmd.Flags().Changed("prob") {
				r.Prob = 0 // default 1
			} else if prob == 0 {
				return usage(fmt.Errorf("prob %v is not in (0, 1]", prob))
			}
			if err := r.WithDefaults().Validate(); err != nil {
				return usage(err)
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			got, err := c.Set(cmd.Context(), r)
			if err != nil {
				return faultfsAPIErr(err)
			}
			fmt.Fprintln(g.stdout, got.ID)
			return nil
		},
	}
	t.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "rule id (replaces a rule with this id); default r<N>")
	f.StringVar(&op, "op", "", "operation: "+strings.Join(names, ", "))
	f.StringVar(&errno, "errno", "", "error to return, an errno(3) name: "+strings.Join(faultfs.ErrnoNames(), ", ")+", ...")
	f.StringVar(&glob, "path", "", "path glob relative to the mount root; '**' spans directories; no '/' matches the base name")
	f.Float64Var(&prob, "prob", 1, "probability in (0, 1] that a matching operation is faulted")
	f.DurationVar(&latency, "latency", 0, "delay before the operation fails or proceeds (released on clear/unmount)")
	f.Int64Var(&count, "count", 0, "fire at most N times (0: unlimited)")
	f.Int64Var(&off, "offset", 0, "read/write only: first byte of the faulted range")
	f.Int64Var(&length, "length", 0, "read/write only: length of the faulted range (0: to end of file)")
	cmd.MarkFlagRequired("op")
	return cmd
}

func newFaultfsClearCmd(g *globals) *cobra.Command {
	var (
		t   faultfsTarget
		all bool
	)
	cmd := &cobra.Command{
		Use:   "clear --name N (ID | --all)",
		Short: "Remove one fault rule, or all; operations blocked in its latency proceed",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return usage(errors.New("give exactly one of a rule ID or --all"))
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			if all {
				ids, err := c.ClearAll(cmd.Context())
				if err != nil {
					return faultfsAPIErr(err)
				}
				fmt.Fprintf(g.stdout, "cleared %d rule(s): %s\n", len(ids), strings.Join(ids, " "))
				return nil
			}
			if err := c.Clear(cmd.Context(), args[0]); err != nil {
				if errors.Is(err, faultfs.ErrNotFound) {
					return usage(fmt.Errorf("no rule %q", args[0]))
				}
				return err
			}
			fmt.Fprintf(g.stdout, "cleared %s\n", args[0])
			return nil
		},
	}
	t.flags(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "clear every rule")
	return cmd
}

func newFaultfsListCmd(g *globals) *cobra.Command {
	var t faultfsTarget
	cmd := &cobra.Command{
		Use:   "list --name N",
		Short: "List fault rules with their counters (matched, fired, blocked now)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			rules, err := c.Rules(cmd.Context())
			if err != nil {
				return err
			}
			stats, err := c.Stats(cmd.Context())
			if err != nil {
				return err
			}
			byID := map[string]faultfs.RuleStats{}
			for _, s := range stats {
				byID[s.ID] = s
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tOP\tPATH\tERRNO\tPROB\tLATENCY\tCOUNT\tMATCHED\tFIRED\tBLOCKED")
			for _, r := range rules {
				s := byID[r.ID]
				cnt := "-"
				if r.Count > 0 {
					cnt = strconv.FormatInt(r.Count, 10)
				}
				lat := "-"
				if r.Latency > 0 {
					lat = time.Duration(r.Latency).String()
				}
				e, p := r.Errno.String(), r.PathGlob
				if e == "" {
					e = "-"
				}
				if p == "" {
					p = "**"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%g\t%s\t%s\t%d\t%d\t%d\n", r.ID, r.Op, p, e, r.Prob, lat, cnt, s.Matched, s.Fired, s.Blocked)
			}
			return tw.Flush()
		},
	}
	t.flags(cmd)
	return cmd
}

func newFaultfsDropCacheCmd(g *globals) *cobra.Command {
	var (
		t    faultfsTarget
		glob string
	)
	cmd := &cobra.Command{
		Use:   "drop-cache --name N [--path GLOB]",
		Short: "Drop the kernel page cache of matching files so mapped reads reach the rules",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			files, err := c.DropCache(cmd.Context(), glob)
			if err != nil {
				return faultfsAPIErr(err)
			}
			fmt.Fprintf(g.stdout, "dropped the page cache of %d file(s)\n", len(files))
			return nil
		},
	}
	t.flags(cmd)
	cmd.Flags().StringVar(&glob, "path", "", "path glob (default: every file)")
	return cmd
}

// faultfsParseSize reads "16M", "512K", "1G" or a byte count.
func faultfsParseSize(s string) (int64, error) {
	v := strings.ToUpper(strings.TrimSpace(s))
	v = strings.TrimSuffix(strings.TrimSuffix(v, "IB"), "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "K"):
		mult, v = 1<<10, strings.TrimSuffix(v, "K")
	case strings.HasSuffix(v, "M"):
		mult, v = 1<<20, strings.TrimSuffix(v, "M")
	case strings.HasSuffix(v, "G"):
		mult, v = 1<<30, strings.TrimSuffix(v, "G")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q is not a byte count like 1048576, 512K or 16M", s)
	}
	return n * mult, nil
}

func newProbeRunCmd(g *globals) *cobra.Command {
	var (
		cfg                 probe.Config
		segSize, recSize    string
		replayOnly, noRepl  bool
		cacheDir, javac     string
		appendAfterReplayOK bool
	)
	cmd := &cobra.Command{
		Use:   "run --dir D [--segment-size 16M] [--batch N] [--rate N] [--duration D] [--records N] [--replay-only|--no-replay]",
		Short: "Run the JVM journal probe; its exit status becomes nfslab's",
		Long: `Replays every journal segment in --dir (CRC32C over the mapped pages), then appends
records to memory-mapped segments, calling MappedByteBuffer.force() after each batch.
Output is the probe's own progress lines and whatever the JVM reports. The exit status is
the probe's: 1 for an uncaught exception (e.g. the msync IOException), 134 for a JVM crash
(e.g. SIGBUS), whose hs_err file is in --error-dir.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if segSize != "" {
				if cfg.SegmentSize, err = faultfsParseSize(segSize); err != nil {
					return usage(fmt.Errorf("--segment-size: %w", err))
				}
			}
			if recSize != "" {
				n, err := faultfsParseSize(recSize)
				if err != nil {
					return usage(fmt.Errorf("--record-size: %w", err))
				}
				cfg.RecordSize = int(n)
			}
			if replayOnly && noRepl {
				return usage(errors.New("--replay-only and --no-replay exclude each other"))
			}
			switch {
			case replayOnly:
				cfg.Mode = probe.ModeReplayOnly
			case noRepl:
				cfg.Mode = probe.ModeAppendOnly
			}
			if err := cfg.Validate(); err != nil {
				return usage(err)
			}
			cd, err := probe.Build(cmd.Context(), javac, cacheDir)
			if err != nil {
				return err
			}
			res, err := probe.Run(cmd.Context(), cd, cfg, func(l probe.Line) {
				if l.Stream == "stderr" {
					fmt.Fprintln(g.stderr, l.Text)
				} else {
					fmt.Fprintln(g.stdout, l.Text)
				}
			})
			if err != nil {
				return err
			}
			if res.HsErr != "" {
				fmt.Fprintf(g.stderr, "nfslab: JVM crash report: %s\n", res.HsErr)
			}
			if res.ExitCode != 0 {
				return exitError{code: res.ExitCode, err: fmt.Errorf("probe exited with status %d", res.ExitCode)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "dir", "", "journal directory (on the storage under test)")
	f.StringVar(&segSize, "segment-size", "", "segment size (default 16M, as Zeebe)")
	f.StringVar(&recSize, "record-size", "", "record payload size (default 1000)")
	f.IntVar(&cfg.Batch, "batch", 0, "records per force() (default 100)")
	f.IntVar(&cfg.Rate, "rate", 0, "records per second (0: unbounded)")
	f.DurationVar(&cfg.Duration, "duration", 0, "stop appending after this long (0: no limit)")
	f.Int64Var(&cfg.Records, "records", 0, "stop after appending N records (0: no limit)")
	f.BoolVar(&replayOnly, "replay-only", false, "replay the segments and exit")
	f.BoolVar(&noRepl, "no-replay", false, "append without replaying first")
	f.BoolVar(&appendAfterReplayOK, "append-after-replay", false, "replay, then append (the default)")
	f.StringVar(&cfg.ErrorDir, "error-dir", "", "directory for hs_err_pid*.log (default: a new temporary directory)")
	f.StringVar(&cacheDir, "cache-dir", probe.DefaultCacheDir, "where the compiled probe is cached")
	f.StringVar(&javac, "javac", "javac", "javac binary")
	f.StringVar(&cfg.Java, "java", "java", "java binary")
	cmd.MarkFlagRequired("dir")
	return cmd
}

func newProbeBuildCmd(g *globals) *cobra.Command {
	var cacheDir, javac, java string
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Compile the embedded probe source with javac and check the JVM's CRC32C intrinsic",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cd, err := probe.Build(cmd.Context(), javac, cacheDir)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, cd)
			ok, err := probe.CRC32CIntrinsic(cmd.Context(), java)
			if err != nil {
				return err
			}
			if !ok {
				fmt.Fprintln(g.stderr, "nfslab: warning: the JVM has no CRC32C intrinsic (no SSE4.2?): a failed mapped read gives InternalError, not the SIGBUS crash")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cacheDir, "cache-dir", probe.DefaultCacheDir, "where the compiled probe is cached")
	cmd.Flags().StringVar(&javac, "javac", "javac", "javac binary")
	cmd.Flags().StringVar(&java, "java", "java", "java binary")
	return cmd
}
