package backends

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/cleanup"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/probe"
	"github.com/nfslab/nfslab/pkg/scenario"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster"
)

// Config is what Build needs besides the scenario.
type Config struct {
	// RunDir is the run directory: logs/, and for faultfs the backing
	// directory.
	RunDir string
	// FaultfsRoot is nfslab's faultfs directory: a faultfs scenario mounts
	// at FaultfsRoot/run-NAME (NAME: the run directory's name), where
	// `heal --all` finds it after a crash. "": cleanup.DefaultFaultfsRoot.
	FaultfsRoot string
	// Records receives the run's child processes and mounts, so heal can
	// end them after nfslab is killed; nil records nothing (the children
	// still die with nfslab).
	Records *proctrack.Store
	// Faults is opened only when the scenario has network steps (a
	// faultfs scenario never touches the firewall).
	Faults func(ctx context.Context) (netfault.Faults, error)
	// ProbeCache is where the compiled probe is cached (default
	// probe.DefaultCacheDir); Javac the compiler (default javac).
	ProbeCache, Javac string
	Logger            *slog.Logger
	Clock             clock.Clock
	// Zeebe are the zeebe target's seams (container runtime, gateway
	// client, netns); the zero value talks to podman and the real gateway.
	// Its Runtime also runs the NFS server container and the probe
	// container (target.probe.container).
	Zeebe cluster.Options
}

// NeedsFaults reports whether sc has network fault steps.
func NeedsFaults(sc *scenario.Scenario) bool {
	for _, st := range sc.Timeline {
		if scenario.IsNetworkFault(st.Action) {
			return true
		}
	}
	return false
}

// noFaults refuses every network fault: for scenarios without any.
type noFaults struct{}

func (noFaults) Plan(context.Context, netfault.Spec) (netfault.Plan, error) {
	return netfault.Plan{}, engine.ErrUnsupported
}
func (noFaults) Apply(context.Context, netfault.Spec) (netfault.Fault, error) {
	return netfault.Fault{}, engine.ErrUnsupported
}
func (noFaults) List(context.Context, string) ([]netfault.Fault, error) { return nil, nil }
func (noFaults) Heal(context.Context, string, string) error             { return netfault.ErrNotFound }
func (noFaults) HealAll(context.Context, string) ([]string, error)      { return nil, nil }
func (noFaults) Diagnose(context.Context, string, string) ([]netfault.Finding, error) {
	return nil, nil
}

// FaultfsMountpoint is where a run in runDir mounts its faultfs: below
// nfslab's faultfs root, never inside the run directory, so that heal
// (which looks only under the root and in the records) finds it.
func FaultfsMountpoint(root, runDir string) string {
	return filepath.Join(root, "run-"+filepath.Base(filepath.Clean(runDir)))
}

// Build wires the real backends for sc.
func Build(ctx context.Context, sc *scenario.Scenario, cfg Config) (engine.Backends, error) {
	var b engine.Backends
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	logDir := filepath.Join(cfg.RunDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return b, fmt.Errorf("creating %s: %w", logDir, err)
	}
	b.Faults = noFaults{}
	if NeedsFaults(sc) {
		if cfg.Faults == nil {
			return b, errors.New("the scenario injects network faults but no fault client was given")
		}
		f, err := cfg.Faults(ctx)
		if err != nil {
			return b, fmt.Errorf("opening the fault client: %w", err)
		}
		b.Faults = f
	}
	switch sc.Storage.Kind {
	case scenario.StorageFaultfs:
		backing := filepath.Join(cfg.RunDir, "backing")
		if sc.Storage.Faultfs != nil && sc.Storage.Faultfs.Backing != "" {
			backing = sc.Storage.Faultfs.Backing
		}
		root := cmp.Or(cfg.FaultfsRoot, cleanup.DefaultFaultfsRoot)
		b.Storage = &FaultfsStorage{Backing: backing, Mountpoint: FaultfsMountpoint(root, cfg.RunDir),
			Subdir: sc.Storage.Subdir, Logger: cfg.Logger, Records: cfg.Records}
	case scenario.StorageLocal:
		b.Storage = LocalStorage{Dir: filepath.Join(cfg.RunDir, "data")}
	case scenario.StorageNFS:
		s, err := NewNFSStorage(sc.Storage, "scenario-"+filepath.Base(cfg.RunDir))
		if err != nil {
			return b, err
		}
		// Not in the run directory: that may be on a filesystem knfsd
		// cannot export (the lab VM's 9p share: "exportfs: /mnt/data does
		// not support NFS export").
		export := ContainerExportDir(filepath.Base(cfg.RunDir))
		s.Container = ContainerServerEnv{Runtime: cfg.Zeebe.WithDefaults().Runtime, RunID: filepath.Base(cfg.RunDir), ExportDir: export}
		b.Storage = s
	default:
		return b, fmt.Errorf("storage kind %q: %w", sc.Storage.Kind, engine.ErrUnsupported)
	}
	switch sc.Target.Kind {
	case scenario.TargetProbe:
		cache := cfg.ProbeCache
		if cache != "" {
			// The JVM runs in the log directory: a relative class path would not resolve.
			if abs, err := filepath.Abs(cache); err == nil {
				cache = abs
			}
		}
		classDir, err := probe.Build(ctx, cfg.Javac, cache)
		if err != nil {
			return b, fmt.Errorf("compiling the journal probe: %w", err)
		}
		pc := scenario.ProbeTarget{}
		if sc.Target.Probe != nil {
			pc = *sc.Target.Probe
		}
		pt := NewProbeTarget(classDir, logDir, pc, cfg.Clock)
		pt.Records = cfg.Records
		if pc.Container {
			rt, err := cfg.Zeebe.WithDefaults().Runtime(ctx)
			if err != nil {
				return b, fmt.Errorf("connecting to podman for the probe container: %w", err)
			}
			pt.UseContainer(rt, filepath.Base(cfg.RunDir))
		}
		b.Target = pt
		if sc.LoadKind() == scenario.LoadProbe {
			b.Load = ProbeLoad{P: pt}
		}
	case scenario.TargetZeebe:
		if err := buildZeebe(ctx, sc, cfg, logDir, &b); err != nil {
			return b, err
		}
	default:
		return b, fmt.Errorf("target kind %q is not wired into the engine yet (the NFS scenarios run with the probe; --set target.kind=probe): %w", sc.Target.Kind, engine.ErrUnsupported)
	}
	b.Detector = Detectors{Custom: sc.Detectors, Clock: cfg.Clock}
	return b, nil
}
