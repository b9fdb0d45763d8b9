package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/engine/enginetest"
	"github.com/nfslab/nfslab/pkg/scenario"
)

func scenarioCLI(t *testing.T, ctx context.Context, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return out.String(), errb.String(), 0
	}
	errb.WriteString("nfslab: " + err.Error() + "\n")
	return out.String(), errb.String(), exitCode(err)
}

func TestScenarioDryRunPrintsPlan(t *testing.T) {
	out, errs, code := scenarioCLI(t, context.Background(), "run", "--dry-run", "../../scenarios/nfs-random-drop-80.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"scenario nfs-random-drop-80", "at +40s", "drop-80", "prob 0.80", "for 1m50s (then healed)",
		"2049", "expectations:", "rate-below", "no msync IOException", "[skipped: target probe]", "rollbacks:", "nothing was touched"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	// Every shipped scenario has a plan.
	files, _ := filepath.Glob("../../scenarios/*.yaml")
	for _, f := range files {
		if _, errs, code := scenarioCLI(t, context.Background(), "run", "--dry-run", f); code != 0 {
			t.Errorf("%s: exit %d: %s", f, code, errs)
		}
	}
}

func TestScenarioBadInputExit2(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("metadata: {name: x}\nduration: 1m\nstorage: {kind: faultfs}\ntarget: {kind: probe}\ntimeline:\n  - id: a\n    at: 10s\n    action: drop\n    fault: {dst: 10.0.0.1, prob: 1.5}\nexpectations:\n  - {kind: fault-hits, step: a}\n"), 0o644)
	unknown := filepath.Join(t.TempDir(), "unknown.yaml")
	os.WriteFile(unknown, []byte("metadata: {name: x}\nduratoin: 1m\n"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", bad}, "probability 1.5 is out of range"},
		{[]string{"run", unknown}, `line 2, column 1: unknown field "duratoin"`},
		{[]string{"run", "--dry-run", "../../scenarios/nfs-full-drop.yaml", "--set", "target.kind=toaster"}, `target kind "toaster"`},
		{[]string{"run", "--dry-run", "../../scenarios/nfs-full-drop.yaml", "--set", "nokey"}, "KEY=VALUE"},
		{[]string{"run", "../../scenarios/nfs-full-drop.yaml", "--repeat", "2", "--until-fail"}, "exclude each other"},
		{[]string{"run", "../../scenarios/nfs-full-drop.yaml", "--repeat", "0"}, "--repeat 0"},
		{[]string{"run"}, "accepts 1 arg"},
		{[]string{"collect", filepath.Join(t.TempDir(), "nope")}, "does not exist"},
	}
	for _, tc := range cases {
		_, errs, code := scenarioCLI(t, context.Background(), tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}

const fakeScenario = `metadata: {name: fake, title: Fake run}
duration: 3s
storage: {kind: local}
target: {kind: probe}
load: {kind: none}
timeline:
  - {id: drop, at: 200ms, for: 500ms, action: drop, fault: {dst: 10.0.0.5, port: 2049}}
expectations:
  - {kind: fault-hits, step: drop}
  - {kind: detector-fires, detector: msync-ioexception, within: 2s}
`

func fakeBackends(faults *enginetest.Faults, lines ...string) backendsFactory {
	return func(_ context.Context, _ *scenario.Scenario, dir string) (engine.Backends, error) {
		return engine.Backends{Faults: faults, Storage: enginetest.Storage{Dir: dir}, Target: enginetest.NewTarget(lines...), Detector: enginetest.Detector{}}, nil
	}
}

func TestScenarioRunExitCodesAndRunDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "fake.yaml")
	os.WriteFile(f, []byte(fakeScenario), 0o644)
	out := t.TempDir()

	faults := &enginetest.Faults{Packets: 12}
	ctx := withBackends(context.Background(), fakeBackends(faults, "msync-ioexception"))
	stdout, errs, code := scenarioCLI(t, ctx, "run", f, "--out", out)
	if code != 0 {
		t.Fatalf("passing run: exit %d\n%s\n%s", code, stdout, errs)
	}
	if !strings.Contains(stdout, "PASS fake") || !strings.Contains(stdout, "12 packets") || !strings.Contains(stdout, "step start lag") {
		t.Errorf("summary:\n%s", stdout)
	}
	if faults.Count() != 0 {
		t.Error("fault left after the run")
	}
	dirs, _ := filepath.Glob(filepath.Join(out, "fake-*"))
	if len(dirs) != 1 {
		t.Fatalf("run dirs %v", dirs)
	}
	for _, n := range []string{"journal.jsonl", "report.md", "report.html", "logs"} {
		if _, err := os.Stat(filepath.Join(dirs[0], n)); err != nil {
			t.Errorf("run dir lacks %s", n)
		}
	}

	// No msync hit: the expectation fails, exit 1; --repeat 2 runs twice.
	out2 := t.TempDir()
	ctx = withBackends(context.Background(), fakeBackends(&enginetest.Faults{Packets: 1}))
	stdout, errs, code = scenarioCLI(t, ctx, "run", f, "--out", out2, "--repeat", "2")
	if code != 1 || !strings.Contains(stdout, "FAIL fake") || !strings.Contains(errs, "2 of 2 run(s) of fake failed") {
		t.Errorf("failing run: exit %d\n%s\n%s", code, stdout, errs)
	}
	if dirs, _ := filepath.Glob(filepath.Join(out2, "fake-*")); len(dirs) != 2 {
		t.Errorf("--repeat 2 made %d run dirs", len(dirs))
	}

	// --until-fail stops at the first failure.
	out3 := t.TempDir()
	stdout, errs, code = scenarioCLI(t, ctx, "run", f, "--out", out3, "--until-fail", "--max-runs", "5", "--fail-fast")
	if code != 1 || !strings.Contains(errs, "run 1 of fake failed") {
		t.Errorf("--until-fail: exit %d\n%s\n%s", code, stdout, errs)
	}
	if dirs, _ := filepath.Glob(filepath.Join(out3, "fake-*")); len(dirs) != 1 {
		t.Errorf("--until-fail made %d run dirs, want 1", len(dirs))
	}

	// collect bundles the first run.
	stdout, errs, code = scenarioCLI(t, context.Background(), "collect", dirs[0])
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(stdout), ".tar.gz") {
		t.Errorf("collect: exit %d %s %s", code, stdout, errs)
	}
}
