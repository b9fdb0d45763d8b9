package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/nfslab/nfslab/bpmn"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/zeebe"
)

// Config configures Run. Zero fields take the defaults in WithDefaults.
type Config struct {
	// Rate is instances created per second (default 0.2: one per 5 s).
	Rate float64
	// Duration bounds the run on the clock; 0 runs until ctx is done.
	Duration time.Duration
	// Workers is the number of job workers (default 1). NoWorkers disables
	// them, for runs that only create.
	Workers   int
	NoWorkers bool
	// MaxJobs is the maximum number of jobs per activation (default 32).
	MaxJobs int32
	// MaxInFlight bounds concurrent create calls (default max(8, rate/10)).
	MaxInFlight int
	// RequestTimeout bounds each create and complete call (default 10 s).
	RequestTimeout time.Duration
	// PollTimeout is the activation long-poll (default 10 s).
	PollTimeout time.Duration
	// SampleInterval is the sample period (default 1 s).
	SampleInterval time.Duration

	ProcessID string // default bpmn.ProcessID
	JobType   string // default bpmn.JobType
	Result    string // job completion variables, default {"result":"Pong"}
	Worker    string // worker name, default "nfslab"
	// Resource and ResourceName are deployed first (default bpmn.OneTask)
	// unless SkipDeploy is set.
	Resource     []byte
	ResourceName string
	SkipDeploy   bool

	Clock clock.Clock
	// OnReady is called once after the topology is read and the process
	// deployed, before the first creation.
	OnReady func(Summary)
	// OnSample is called once per interval, from one goroutine, in order.
	OnSample func(journal.LoadSample)
	Logger   *slog.Logger
}

// DefaultResult is what the workshop's zbctl worker completed jobs with.
const DefaultResult = `{"result":"Pong"}`

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Rate == 0 {
		c.Rate = 0.2
	}
	if c.Workers == 0 && !c.NoWorkers {
		c.Workers = 1
	}
	if c.NoWorkers {
		c.Workers = 0
	}
	if c.MaxJobs == 0 {
		c.MaxJobs = 32
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = int(math.Max(8, math.Ceil(c.Rate/10)))
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.PollTimeout == 0 {
		c.PollTimeout = 10 * time.Second
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = time.Second
	}
	if c.ProcessID == "" {
		c.ProcessID = bpmn.ProcessID
	}
	if c.JobType == "" {
		c.JobType = bpmn.JobType
	}
	if c.Result == "" {
		c.Result = DefaultResult
	}
	if c.Worker == "" {
		c.Worker = "nfslab"
	}
	if c.Resource == nil {
		c.Resource, c.ResourceName = bpmn.OneTask, bpmn.OneTaskName
	}
	if c.ResourceName == "" {
		c.ResourceName = "resource.bpmn"
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ErrInvalid marks a bad Config.
var ErrInvalid = errors.New("invalid load config")

// Validate checks a Config after WithDefaults.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	switch {
	case !(c.Rate > 0) || c.Rate > MaxRate:
		return bad("rate %v/s is not in (0, %d]", c.Rate, MaxRate)
	case c.Duration < 0:
		return bad("duration %s is negative", c.Duration)
	case c.Workers < 0 || c.Workers > 256:
		return bad("workers %d is not in [0, 256]", c.Workers)
	case c.MaxJobs < 1:
		return bad("max jobs %d is below 1", c.MaxJobs)
	case c.MaxInFlight < 1 || c.MaxInFlight > 10000:
		return bad("max in flight %d is not in [1, 10000]", c.MaxInFlight)
	case c.RequestTimeout < 0, c.PollTimeout < 0:
		return bad("timeouts must not be negative")
	case c.SampleInterval < 10*time.Millisecond:
		return bad("sample interval %s is below 10ms", c.SampleInterval)
	}
	return nil
}

// Summary is the whole run.
type Summary struct {
	Start, End  time.Time
	Deployment  zeebe.Deployment
	Topology    zeebe.Topology
	TopologyErr string
	Created     int
	Completed   int
	Skipped     int // due creations not sent because MaxInFlight were pending
	Errors      map[string]int
	ByPartition map[int32]int
	Samples     int
}

// stats accumulates one interval and the totals.
type stats struct {
	mu          sync.Mutex
	created     int
	completed   int
	skipped     int
	errors      map[string]int
	byPartition map[int32]int
	latencies   []time.Duration
	last        time.Time // end of the previous interval
	total       Summary
}

func (s *stats) addCreated(inst zeebe.Instance, lat time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := inst.Partition()
	s.created++
	s.total.Created++
	if s.byPartition == nil {
		s.byPartition = map[int32]int{}
	}
	s.byPartition[p]++
	s.total.ByPartition[p]++
	s.latencies = append(s.latencies, lat)
}

func (s *stats) addError(err error) {
	class := zeebe.ErrorClass(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errors == nil {
		s.errors = map[string]int{}
	}
	s.errors[class]++
	s.total.Errors[class]++
}

func (s *stats) addCompleted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.completed++
	s.total.Completed++
}

func (s *stats) addSkipped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skipped++
	s.total.Skipped++
}

// cut ends the interval at now and returns its sample.
func (s *stats) cut(now time.Time) journal.LoadSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := journal.LoadSample{
		T: now, Interval: now.Sub(s.last), Source: "zeebe",
		Created: s.created, Completed: s.completed, Skipped: s.skipped,
		Errors: s.errors, ByPartition: s.byPartition,
	}
	if len(s.latencies) > 0 {
		sort.Slice(s.latencies, func(i, j int) bool { return s.latencies[i] < s.latencies[j] })
		ls.LatencyP50 = percentile(s.latencies, 0.50)
		ls.LatencyP95 = percentile(s.latencies, 0.95)
		ls.LatencyP99 = percentile(s.latencies, 0.99)
	}
	s.created, s.completed, s.skipped = 0, 0, 0
	s.errors, s.byPartition = nil, nil
	s.latencies = s.latencies[:0]
	s.last = now
	s.total.Samples++
	return ls
}

// percentile is the nearest-rank percentile of sorted d.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

// Run deploys the process (unless cfg.SkipDeploy), then creates instances
// and completes jobs until cfg.Duration has passed on cfg.Clock or ctx is
// done, calling cfg.OnSample every interval and once more at the end for
// the partial interval. It returns an error only when the config is bad or
// the deployment fails; failed creations and completions are counted.
func Run(ctx context.Context, c zeebe.Client, cfg Config) (Summary, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	clk := cfg.Clock
	st := &stats{total: Summary{Errors: map[string]int{}, ByPartition: map[int32]int{}}}
	st.total.Start = clk.Now()
	st.last = st.total.Start

	tctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	top, err := c.Topology(tctx)
	cancel()
	if err != nil {
		cfg.Logger.Warn("reading zeebe topology", "err", err)
		st.total.TopologyErr = err.Error()
	}
	st.total.Topology = top

	if !cfg.SkipDeploy {
		dctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		d, err := c.Deploy(dctx, cfg.ResourceName, cfg.Resource)
		cancel()
		if err != nil {
			st.total.End = clk.Now()
			return st.total, fmt.Errorf("starting load: %w", err)
		}
		st.total.Deployment = d
		cfg.Logger.Info("deployed", "resource", cfg.ResourceName, "key", d.Key)
	}

	if cfg.OnReady != nil {
		cfg.OnReady(st.total)
	}
	// Intervals start when the load does, not when the deployment began.
	st.mu.Lock()
	st.last = clk.Now()
	st.mu.Unlock()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup // creations and workers
	for i := 0; i < cfg.Workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			work(runCtx, c, cfg, fmt.Sprintf("%s-%d", cfg.Worker, i), st)
		}(i)
	}

	samplerDone := make(chan struct{})
	samplerStopped := make(chan struct{})
	go func() {
		defer close(samplerStopped)
		for {
			select {
			case <-clk.After(cfg.SampleInterval):
			case <-samplerDone:
				return
			}
			s := st.cut(clk.Now())
			if cfg.OnSample != nil {
				cfg.OnSample(s)
			}
		}
	}()

	schedule(runCtx, c, cfg, st, &wg)

	stop()
	wg.Wait()
	close(samplerDone)
	<-samplerStopped
	end := clk.Now()
	// The final partial interval, so totals equal the sum of samples.
	final := st.cut(end)
	if cfg.OnSample != nil && (final.Created > 0 || final.Completed > 0 || final.Skipped > 0 || len(final.Errors) > 0) {
		cfg.OnSample(final)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.total.End = end
	return st.total, nil
}

// schedule creates instances on the token bucket until the duration ends or
// ctx is done.
func schedule(ctx context.Context, c zeebe.Client, cfg Config, st *stats, wg *sync.WaitGroup) {
	clk := cfg.Clock
	start := clk.Now()
	b := newBucket(cfg.Rate, start)
	sem := make(chan struct{}, cfg.MaxInFlight)
	wake := tick(cfg.Rate)
	for {
		now := clk.Now()
		if cfg.Duration > 0 && !now.Before(start.Add(cfg.Duration)) {
			return
		}
		for n := b.take(now); n > 0; n-- {
			select {
			case sem <- struct{}{}:
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					create(ctx, c, cfg, st)
				}()
			default:
				st.addSkipped()
			}
		}
		d := wake
		if cfg.Duration > 0 {
			if left := start.Add(cfg.Duration).Sub(now); left < d {
				d = left // wake to end on time, not a whole tick late
			}
		}
		select {
		case <-clk.After(d):
		case <-ctx.Done():
			return
		}
	}
}

func create(ctx context.Context, c zeebe.Client, cfg Config, st *stats) {
	cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	t0 := cfg.Clock.Now()
	inst, err := c.CreateInstance(cctx, cfg.ProcessID, "")
	lat := cfg.Clock.Now().Sub(t0)
	switch {
	case err == nil:
		st.addCreated(inst, lat)
	case ctx.Err() != nil:
		// The run ended under the call: not the gateway's failure.
	default:
		st.addError(err)
		cfg.Logger.Debug("creating instance", "err", err)
	}
}

// work activates and completes jobs until ctx is done.
func work(ctx context.Context, c zeebe.Client, cfg Config, name string, st *stats) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, cfg.PollTimeout)
		jobs, err := c.ActivateJobs(pctx, zeebe.ActivateRequest{Type: cfg.JobType, Worker: name, MaxJobs: cfg.MaxJobs, Timeout: 5 * time.Minute})
		cancel()
		for _, j := range jobs {
			cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
			err := c.CompleteJob(cctx, j.Key, cfg.Result)
			cancel()
			switch {
			case err == nil:
				st.addCompleted()
			case ctx.Err() == nil:
				st.addError(err)
				cfg.Logger.Debug("completing job", "key", j.Key, "err", err)
			}
		}
		if err == nil || ctx.Err() != nil {
			backoff = 100 * time.Millisecond
			continue
		}
		st.addError(err)
		cfg.Logger.Debug("activating jobs", "worker", name, "err", err)
		// Back off so a dead gateway is not polled in a hot loop.
		select {
		case <-cfg.Clock.After(backoff):
		case <-ctx.Done():
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}
