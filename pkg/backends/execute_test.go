package backends

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/engine/enginetest"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// A relative --out once put the probe's journal on the plain disk (the JVM
// runs in logs/): the run directory handed to the backends is absolute.
func TestExecuteRunDirIsAbsolute(t *testing.T) {
	sc, err := scenario.Decode([]byte(`metadata: {name: abs}
duration: 1s
storage: {kind: local}
target: {kind: probe}
load: {kind: none}
timeline:
  - {id: w, at: 100ms, action: wait, for: 100ms}
expectations:
  - {kind: detector-absent, detector: jvm-sigbus, within: 500ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	var got string
	run, err := Execute(context.Background(), sc, "runs", 0, engine.Options{}, func(_ context.Context, dir string) (engine.Backends, error) {
		got = dir
		return engine.Backends{Faults: &enginetest.Faults{}, Storage: enginetest.Storage{Dir: dir}, Target: enginetest.NewTarget()}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(got) || got != run.Dir {
		t.Fatalf("backends got run dir %q (run %q), want the same absolute path", got, run.Dir)
	}
	if !run.Result.Passed {
		t.Fatalf("%+v", run.Result)
	}
	if _, err := os.Stat(filepath.Join(run.Dir, journal.FileName)); err != nil {
		t.Fatal(err)
	}
}
