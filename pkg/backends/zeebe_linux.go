package backends

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/scenario"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster"
)

// buildZeebe wires the zeebe target (pkg/zeebe/cluster) and its load into b.
func buildZeebe(ctx context.Context, sc *scenario.Scenario, cfg Config, logDir string, b *engine.Backends) error {
	zc := scenario.ZeebeTarget{}
	if sc.Target.Zeebe != nil {
		zc = *sc.Target.Zeebe
	}
	opts := cfg.Zeebe.WithDefaults()
	rt, err := opts.Runtime(ctx)
	if err != nil {
		return fmt.Errorf("connecting to podman for the zeebe target: %w", err)
	}
	zt := cluster.NewTarget(zc, filepath.Base(cfg.RunDir), logDir, rt, opts, cfg.Clock, cfg.Logger)
	b.Target = zt
	if sc.LoadKind() == scenario.LoadZeebe {
		b.Load = cluster.NewLoad(zt, sc.Load, wantsDetector(sc, "deadline-exceeded"))
	}
	return nil
}

// wantsDetector reports whether sc waits for detector name anywhere.
func wantsDetector(sc *scenario.Scenario, name string) bool {
	for _, e := range sc.Expectations {
		if e.Detector == name {
			return true
		}
	}
	for _, st := range sc.Timeline {
		if st.On == name {
			return true
		}
	}
	return false
}
