package backends

import (
	"context"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/detect"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// Detectors runs pkg/detect's matchers over the target's lines, one
// matcher per source (a broker, the probe), with the scenario's custom
// detectors added to the built-ins.
type Detectors struct {
	Custom []scenario.Detector
	Clock  clock.Clock
	// Idle flushes grouped events (a stack trace) after this long without
	// a new line (default 300ms).
	Idle time.Duration
}

var _ engine.Detector = Detectors{}

func (d Detectors) detectors() ([]detect.Detector, error) {
	dets := detect.Builtins()
	for _, c := range d.Custom {
		x, err := detect.Custom(c.Name, c.Pattern, 0, 0)
		if err != nil {
			return nil, err
		}
		dets = append(dets, x)
	}
	return dets, nil
}

// Run implements engine.Detector.
func (d Detectors) Run(ctx context.Context, lines <-chan engine.Line) <-chan journal.Hit {
	out := make(chan journal.Hit, 256)
	if lines == nil {
		return out
	}
	clk := d.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	idle := d.Idle
	if idle == 0 {
		idle = 300 * time.Millisecond
	}
	dets, err := d.detectors()
	if err != nil {
		dets = detect.Builtins() // the scenario validated the patterns; this is unreachable in practice
	}
	go func() {
		matchers := map[string]*detect.Matcher{}
		emit := func(h journal.Hit) {
			select {
			case out <- h:
			case <-ctx.Done():
			}
		}
		get := func(src string) *detect.Matcher {
			m := matchers[src]
			if m == nil {
				m, _ = detect.New(detect.Options{Detectors: dets, Source: src, Clock: clk}, emit)
				matchers[src] = m
			}
			return m
		}
		flush := func() {
			for _, m := range matchers {
				m.FlushGroups()
			}
		}
		t := time.NewTimer(idle)
		defer t.Stop()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					for _, m := range matchers {
						m.Flush()
					}
					return
				}
				if m := get(l.Source); m != nil {
					m.Line([]byte(l.Text))
				}
				t.Reset(idle)
			case <-t.C:
				flush()
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
