package backends

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// RunDirName is the run directory's name: <scenario>-<UTC timestamp>.
func RunDirName(sc *scenario.Scenario, t time.Time) string {
	return sc.Metadata.Name + "-" + t.UTC().Format("20060102T150405.000Z")
}

// Run is one executed scenario run.
type Run struct {
	Dir    string
	Result *engine.Result
}

// Reporter writes report.md and report.html from a run directory's
// journal (pkg/report).
type Reporter func(runDir string) error

// Execute runs sc once in a fresh run directory below outDir: journal.jsonl,
// logs/, the storage's directories, then the report. build makes the
// backends for the run directory (Build, or fakes in tests).
func Execute(ctx context.Context, sc *scenario.Scenario, outDir string, iteration int, opts engine.Options,
	build func(ctx context.Context, runDir string) (engine.Backends, error), report Reporter) (*Run, error) {
	// Absolute: the probe's JVM runs in logs/, where a relative data
	// directory would silently land on the plain disk instead of the
	// storage under test.
	outDir, err := filepath.Abs(outDir)
	if err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	dir := filepath.Join(outDir, RunDirName(sc, time.Now()))
	if iteration > 0 {
		dir += fmt.Sprintf("-%d", iteration)
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("creating run directory: %w", err)
	}
	jw, err := journal.Create(filepath.Join(dir, journal.FileName))
	if err != nil {
		return nil, err
	}
	b, err := build(ctx, dir)
	if err != nil {
		jw.Close()
		return &Run{Dir: dir}, fmt.Errorf("preparing backends: %w", err)
	}
	opts.Journal = jw
	opts.Iteration = iteration
	if opts.RunID == "" {
		opts.RunID = filepath.Base(dir)
	}
	res := engine.Run(ctx, sc, b, opts)
	if err := jw.Close(); err != nil && res.Err == nil {
		res.Err = err
	}
	run := &Run{Dir: dir, Result: res}
	if report != nil {
		if err := report(dir); err != nil {
			return run, fmt.Errorf("writing the report: %w", err)
		}
	}
	return run, nil
}
