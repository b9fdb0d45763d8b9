package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nfslab/nfslab/bpmn"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/load"
	"github.com/nfslab/nfslab/pkg/scenario"
	"github.com/nfslab/nfslab/pkg/zeebe"
)

// Load is pkg/load against the target's gateway (broker 0's,
// 127.0.0.1:26500 by default) as the engine's Load. With deployments or
// deploy_every it also deploys new versions of the process (seed 001's
// deployment distribution); instances are always of the latest version.
type Load struct {
	t   *Target
	cfg scenario.Load
	// deadlineLines feeds each client-side DEADLINE_EXCEEDED into the
	// detectors as a line, so the deadline-exceeded detector fires on the
	// load's own timeouts (set when the scenario expects that detector).
	deadlineLines bool

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

var _ engine.Load = (*Load)(nil)

// NewLoad is cfg's load against t's gateway; deadlineLines turns the
// client's own DEADLINE_EXCEEDED into detector lines.
func NewLoad(t *Target, cfg scenario.Load, deadlineLines bool) *Load {
	return &Load{t: t, cfg: cfg, deadlineLines: deadlineLines}
}

// Start dials the gateway, does the initial deployments and runs the load
// until Stop or ctx ends. Samples go to the returned channel, each with
// the deployments' failures added to its Errors.
func (l *Load) Start(ctx context.Context) (<-chan journal.LoadSample, error) {
	raw, err := l.t.opts.Dial(l.t.GatewayAddr())
	if err != nil {
		return nil, fmt.Errorf("connecting to the gateway %s: %w", l.t.GatewayAddr(), err)
	}
	c := &watchedClient{Client: raw, t: l.t, lines: l.deadlineLines}
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan journal.LoadSample, 256)
	done := make(chan struct{})
	l.mu.Lock()
	l.cancel, l.done = cancel, done
	l.mu.Unlock()

	d := &deployer{c: c}
	versioned := l.cfg.Deployments > 0 || l.cfg.DeployEvery > 0
	cfg := load.Config{Rate: l.cfg.Rate, Clock: l.t.clk, Logger: l.t.log, SampleInterval: l.t.opts.SampleInterval,
		NoWorkers: l.cfg.Worker != nil && !*l.cfg.Worker, SkipDeploy: versioned,
		OnSample: func(s journal.LoadSample) {
			d.addTo(&s)
			select {
			case out <- s:
			default: // the engine is gone or far behind: drop, never block the load
			}
		}}
	go func() {
		defer close(done)
		defer c.Close()
		var wg sync.WaitGroup
		if versioned {
			// The seed deployed many versions first, then one more every few
			// seconds, creating instances of the newest.
			for i := 0; i < max(l.cfg.Deployments, 1) && ctx.Err() == nil; i++ {
				d.deploy(ctx)
			}
			if every := l.cfg.DeployEvery.D(); every > 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-ctx.Done():
							return
						case <-l.t.clk.After(every):
							d.deploy(ctx)
						}
					}
				}()
			}
		}
		if _, err := load.Run(ctx, c, cfg); err != nil && ctx.Err() == nil {
			l.t.log.Warn("zeebe load ended", "err", err)
			l.t.emitLine("zeebe-client", "nfslab load: "+err.Error())
		}
		cancel()
		wg.Wait()
	}()
	return out, nil
}

// Stop ends the load and waits for it.
func (l *Load) Stop(ctx context.Context) error {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("the zeebe load did not stop within 30s")
	}
}

// deployer deploys numbered versions of the one-task process and counts
// failures for the next sample.
type deployer struct {
	c       zeebe.Client
	mu      sync.Mutex
	version int
	errs    map[string]int
}

// versioned changes the process name so Zeebe sees a new resource and
// makes a new version (an identical resource is not redeployed).
func versioned(v int) []byte {
	return bytes.Replace(bpmn.OneTask, []byte(`name="nfslab benchmark"`), []byte(`name="nfslab benchmark v`+strconv.Itoa(v)+`"`), 1)
}

func (d *deployer) deploy(ctx context.Context) {
	d.mu.Lock()
	d.version++
	v := d.version
	d.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := d.c.Deploy(dctx, bpmn.OneTaskName, versioned(v))
	cancel()
	if err == nil || ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.errs == nil {
		d.errs = map[string]int{}
	}
	d.errs[zeebe.ErrorClass(err)]++
}

func (d *deployer) addTo(s *journal.LoadSample) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.errs) == 0 {
		return
	}
	if s.Errors == nil {
		s.Errors = map[string]int{}
	}
	for k, v := range d.errs {
		s.Errors[k] += v
	}
	d.errs = nil
}

// watchedClient turns client-side DeadlineExceeded into detector lines.
type watchedClient struct {
	zeebe.Client
	t     *Target
	lines bool
}

func (w *watchedClient) seen(ctx context.Context, call string, err error) {
	if !w.lines || err == nil || zeebe.ErrorClass(err) != journal.ErrDeadlineExceeded || errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	w.t.emitLine("zeebe-client", fmt.Sprintf("nfslab load: %s: DEADLINE_EXCEEDED: %v", call, err))
}

func (w *watchedClient) Deploy(ctx context.Context, name string, content []byte) (zeebe.Deployment, error) {
	d, err := w.Client.Deploy(ctx, name, content)
	w.seen(ctx, "DeployResource", err)
	return d, err
}

func (w *watchedClient) CreateInstance(ctx context.Context, id, vars string) (zeebe.Instance, error) {
	i, err := w.Client.CreateInstance(ctx, id, vars)
	w.seen(ctx, "CreateProcessInstance", err)
	return i, err
}

func (w *watchedClient) CompleteJob(ctx context.Context, key int64, vars string) error {
	err := w.Client.CompleteJob(ctx, key, vars)
	w.seen(ctx, "CompleteJob", err)
	return err
}
