package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
)

// Timeouts of the guest steps. A scenario's own duration is at most a few
// minutes; the bound only stops a hung step from eating the CI budget.
const (
	ScenarioTimeout = 12 * time.Minute
	SmokeTimeout    = 6 * time.Minute
	// SmokeStep is the name of the fallback full-drop smoke step.
	SmokeStep = "vm-smoke-full-drop"
)

// GuestShare is where the guest init mounts the host share.
const GuestShare = "/mnt/nfslab"

// ProbeCacheDir is the share directory holding the probe compiled on the
// host, laid out like pkg/probe's cache (<cache>/<source hash>/), so the
// engine in the guest finds it and never needs javac (the guest has a JRE).
const ProbeCacheDir = "probecache"

// GuestProbeCache is ProbeCacheDir as the guest sees it.
const GuestProbeCache = GuestShare + "/" + ProbeCacheDir

// ShippedNFSScenarios lists the nfs-*.yaml scenarios in dir, sorted.
func ShippedNFSScenarios(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "nfs-*.yaml"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range m {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".yaml"))
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("no nfs-*.yaml scenarios in %s", dir)
	}
	return names, nil
}

// LocalIOScenarioPrefix names the shipped scenarios that need nfslab's
// LOCALIO kernel (nfs-localio, nfs-localio-disabled): on Debian's kernel
// LOCALIO is absent and their expectations would fail.
const LocalIOScenarioPrefix = "nfs-localio"

// ScenariosForKernel picks the shipped scenarios a kernel flavour runs by
// default: the LOCALIO ones on the LOCALIO kernel, the others on Debian's.
func ScenariosForKernel(names []string, kernel string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, LocalIOScenarioPrefix) == (kernel == KernelLocalIO) {
			out = append(out, n)
		}
	}
	return out
}

// CheckScenarios makes sure every name has a file in dir.
func CheckScenarios(dir string, names []string) error {
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, "/\\") {
			return fmt.Errorf("%w: scenario name %q", ErrInvalid, n)
		}
		if _, err := os.Stat(filepath.Join(dir, n+".yaml")); err != nil {
			return fmt.Errorf("%w: scenario %q: no %s", ErrInvalid, n, filepath.Join(dir, n+".yaml"))
		}
	}
	return nil
}

// PlanOptions says what the guest should run.
type PlanOptions struct {
	Scenarios []string
	// Engine is true when this nfslab build has `nfslab run`; without it
	// only the full-drop case can run, as the smoke test.
	Engine bool
	// Smoke adds the smoke test as its own step.
	Smoke bool
	// Tests are Go test binaries (go test -c, CGO_ENABLED=0) that run in
	// the guest after the scenarios, for tests that need kernel NFS.
	Tests []TestBinary
	// CI passes CI=true to the tests, so their privileged skips fail.
	CI bool
	// Crashes are crash trials run after the scenarios (engine builds
	// only): the scenario killed mid-run, then `nfslab heal --all`.
	Crashes []CrashTrial
}

// CrashTrial kills `nfslab run SCENARIO` After its first fault is applied.
type CrashTrial struct {
	Scenario string
	After    time.Duration
}

// CrashAfterLine is the log line of `nfslab run` that arms a crash trial:
// the first fault is in the kernel, so the kill lands during a fault.
const CrashAfterLine = `fault applied`

// ParseCrashTrial reads "SCENARIO@DURATION", e.g. nfs-full-drop@15s.
func ParseCrashTrial(v string) (CrashTrial, error) {
	name, after, ok := strings.Cut(v, "@")
	if !ok || name == "" {
		return CrashTrial{}, fmt.Errorf("%w: crash trial %q: want SCENARIO@DURATION, e.g. nfs-full-drop@15s", ErrInvalid, v)
	}
	d, err := time.ParseDuration(after)
	if err != nil || d < 0 || d >= ScenarioTimeout {
		return CrashTrial{}, fmt.Errorf("%w: crash trial %q: kill time %q is not a duration between 0 and %s", ErrInvalid, v, after, ScenarioTimeout)
	}
	return CrashTrial{Scenario: name, After: d}, nil
}

// TestBinary is a compiled Go test package and the -test.run filter.
type TestBinary struct {
	Path string // on the host
	Run  string // regexp; "" runs all
}

// ShareName is the binary's path on the share.
func (tb TestBinary) ShareName() string { return filepath.Join("tests", filepath.Base(tb.Path)) }

// ParseTestBinary reads "PATH" or "PATH=REGEX".
func ParseTestBinary(v string) (TestBinary, error) {
	p, run, _ := strings.Cut(v, "=")
	if p == "" {
		return TestBinary{}, fmt.Errorf("%w: test binary %q: want PATH or PATH=REGEX", ErrInvalid, v)
	}
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return TestBinary{}, fmt.Errorf("%w: test binary %q is not an executable file (build it with CGO_ENABLED=0 go test -c)", ErrInvalid, p)
	}
	if err := CheckStatic(p); err != nil {
		return TestBinary{}, err
	}
	return TestBinary{Path: p, Run: run}, nil
}

// PlanJob turns scenario names into the agent's steps. All paths are
// relative to the share, which is the steps' working directory.
func PlanJob(o PlanOptions) Job {
	var j Job
	smoke := o.Smoke
	for _, n := range o.Scenarios {
		if o.Engine {
			j.Steps = append(j.Steps, Step{Name: n, Timeout: duration.Duration(ScenarioTimeout), Retries: ScenarioRetries,
				Argv: []string{"nfslab", "run", filepath.Join("scenarios", n+".yaml"), "--out", "runs",
					"--probe-cache", GuestProbeCache}})
			continue
		}
		if n == "nfs-full-drop" {
			smoke = true
			continue
		}
		// Reported as a failing step so the gap is visible, not silent.
		j.Steps = append(j.Steps, Step{Name: n, Timeout: duration.Duration(time.Minute),
			Argv: []string{"nfslab", "vm", "unsupported", "--reason", "this nfslab build has no scenario engine (nfslab run)", n}})
	}
	if smoke {
		j.Steps = append([]Step{SmokeJobStep()}, j.Steps...)
	}
	if o.Engine {
		for _, c := range o.Crashes {
			j.Steps = append(j.Steps, Step{Name: "crash-" + c.Scenario, Timeout: duration.Duration(ScenarioTimeout),
				Argv: []string{"nfslab", "run", filepath.Join("scenarios", c.Scenario+".yaml"), "--out", "runs",
					"--probe-cache", GuestProbeCache},
				Crash: &Crash{AfterLine: CrashAfterLine, After: duration.Duration(c.After), Heal: []string{"nfslab", "heal", "--all"}}})
		}
	}
	for _, tb := range o.Tests {
		argv := []string{tb.ShareName(), "-test.v", "-test.count=1", "-test.timeout=" + TestTimeout.String()}
		if tb.Run != "" {
			argv = append(argv, "-test.run", tb.Run)
		}
		st := Step{Name: "gotest-" + strings.TrimSuffix(filepath.Base(tb.Path), ".test"), Argv: argv,
			Timeout: duration.Duration(TestTimeout + time.Minute)}
		if o.CI {
			st.Env = []string{"CI=true"}
		}
		j.Steps = append(j.Steps, st)
	}
	return j
}

// ScenarioRetries is how often a failed scenario is run again in the guest
// (see Step.Retries): once, for the JVM's rare crashes under TCG.
const ScenarioRetries = 1

// TestTimeout bounds one Go test binary in the guest.
const TestTimeout = 10 * time.Minute

// SmokeJobStep runs the full-drop smoke test in the guest.
func SmokeJobStep() Step {
	return Step{Name: SmokeStep, Timeout: duration.Duration(SmokeTimeout), Retries: ScenarioRetries,
		Argv: []string{"nfslab", "vm", "smoke", "full-drop", "--probe", "probe", "--out", "runs"}}
}

// Cost is what SplitPlan weighs a scenario by: the time it is expected to
// take in the guest, and a group of scenarios that share a set-up made
// once per boot (the probe-in-a-container scenarios share the probe
// image the first of them imports), which stay in one boot.
type Cost struct {
	Time  time.Duration
	Group string
	// Setup is the group's shared set-up, counted once per group.
	Setup time.Duration
}

// Expected times of the steps that are not scenarios, for SplitPlan.
const (
	// CrashTrialCost is about what a crash trial took in the lab VM
	// (45-55 s) plus its set-up.
	CrashTrialCost = time.Minute
	// TestBinaryCost is a guess for a Go test binary: the ones CI runs in
	// the guest took 18 s to 2m11s.
	TestBinaryCost = 2 * time.Minute
)

// SplitPlan divides o among at most n boots of the same image that run
// side by side, of about equal expected time (longest first onto the
// least loaded boot). A unit is a scenario, a group of scenarios (their
// times summed, the group's set-up added once), a crash trial or a test
// binary; ties go to the earlier boot. The smoke test goes to the first
// boot. Each boot keeps o's order of scenarios, trials and tests; boots
// left with nothing are dropped. n <= 1 returns o alone.
func SplitPlan(o PlanOptions, n int, cost func(scenario string) Cost) []PlanOptions {
	if n <= 1 {
		return []PlanOptions{o}
	}
	type unit struct {
		scen        []int // indices into o.Scenarios
		crash, test []int
		t, setup    time.Duration
	}
	var units []*unit
	groups := map[string]*unit{}
	for i, name := range o.Scenarios {
		c := cost(name)
		u := groups[c.Group]
		if u == nil || c.Group == "" {
			u = &unit{}
			units = append(units, u)
			if c.Group != "" {
				groups[c.Group] = u
			}
		}
		u.scen = append(u.scen, i)
		u.t += c.Time
		if c.Setup > u.setup {
			u.t += c.Setup - u.setup
			u.setup = c.Setup
		}
	}
	for i := range o.Crashes {
		units = append(units, &unit{crash: []int{i}, t: CrashTrialCost})
	}
	for i := range o.Tests {
		units = append(units, &unit{test: []int{i}, t: TestBinaryCost})
	}
	sort.SliceStable(units, func(a, b int) bool { return units[a].t > units[b].t })
	load := make([]time.Duration, n)
	got := make([][]*unit, n)
	for _, u := range units {
		k := 0
		for j := 1; j < n; j++ {
			if load[j] < load[k] {
				k = j
			}
		}
		load[k] += u.t
		got[k] = append(got[k], u)
	}
	var out []PlanOptions
	for k := range n {
		var scen, crash, test []int
		for _, u := range got[k] {
			scen, crash, test = append(scen, u.scen...), append(crash, u.crash...), append(test, u.test...)
		}
		p := PlanOptions{Engine: o.Engine, CI: o.CI, Smoke: o.Smoke && k == 0}
		for _, i := range sorted(scen) {
			p.Scenarios = append(p.Scenarios, o.Scenarios[i])
		}
		for _, i := range sorted(crash) {
			p.Crashes = append(p.Crashes, o.Crashes[i])
		}
		for _, i := range sorted(test) {
			p.Tests = append(p.Tests, o.Tests[i])
		}
		if len(p.Scenarios)+len(p.Crashes)+len(p.Tests) > 0 || p.Smoke {
			out = append(out, p)
		}
	}
	if len(out) == 0 { // nothing to split: one boot, as PlanJob would make it
		return []PlanOptions{o}
	}
	return out
}

func sorted(x []int) []int { sort.Ints(x); return x }
