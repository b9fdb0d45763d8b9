package backends

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/probe"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// ProbeTarget runs the JVM journal probe as the target and is also its
// load: the append rate comes from the probe's own progress lines. Each
// JVM runs as nfslab's child process, or in a podman container
// (target.probe.container, see UseContainer); nothing else differs.
type ProbeTarget struct {
	ClassDir string // compiled probe (probe.Build)
	LogDir   string // probe.log and hs_err_pid*.log go here, off the storage under test
	Cfg      scenario.ProbeTarget
	Clock    clock.Clock
	// Records receives each JVM so heal can end it after nfslab is
	// killed; nil records nothing (it dies with nfslab all the same).
	Records *proctrack.Store

	proc probeProcess

	lines   chan engine.Line
	events  chan engine.Event
	exits   chan engine.Exit
	samples chan journal.LoadSample

	mu      sync.Mutex
	dataDir string
	gen     int // incremented by every (re)start; exits of older ones are expected
	cancel  context.CancelFunc
	done    chan struct{}
	pid     int
	records int64
	// forceP50, forceP99: force() latency of the last append line not yet
	// in a load sample.
	forceP50, forceP99 time.Duration
	replay             bool
	log                *os.File
	closed             bool
	stopLoad           chan struct{}
}

var (
	_ engine.Target = (*ProbeTarget)(nil)
	_ engine.Load   = ProbeLoad{}
)

// NewProbeTarget prepares a probe target; Start runs it.
func NewProbeTarget(classDir, logDir string, cfg scenario.ProbeTarget, clk clock.Clock) *ProbeTarget {
	if clk == nil {
		clk = clock.Real{}
	}
	return &ProbeTarget{ClassDir: classDir, LogDir: logDir, Cfg: cfg, Clock: clk, proc: hostProbe{classDir: classDir},
		lines: make(chan engine.Line, 8192), events: make(chan engine.Event, 16),
		exits: make(chan engine.Exit, 4), samples: make(chan journal.LoadSample, 64)}
}

// probeProcess is how one JVM of the probe is started, waited for and
// logged; the target's logic (prefill, generations, progress, exits) is
// the same for each.
type probeProcess interface {
	// prepare readies what every run needs, before the first one and
	// before the timeline starts (the probe image).
	prepare(ctx context.Context) error
	// run runs one JVM with cfg to its end, calling onLine for each output
	// line. Like probe.Run, a JVM that exits non-zero is no error, and
	// cancelling ctx ends it.
	run(ctx context.Context, cfg probe.Config, onLine func(probe.Line)) (probe.Result, error)
	// control pauses, unpauses, stops or kills the running JVM; pid is
	// the one its start line printed.
	control(ctx context.Context, action string, pid int) error
	// close removes whatever the runs left behind.
	close(ctx context.Context) error
}

// hostProbe runs the JVM as nfslab's child (probe.Run).
type hostProbe struct{ classDir string }

func (hostProbe) prepare(context.Context) error { return nil }

func (h hostProbe) run(ctx context.Context, cfg probe.Config, onLine func(probe.Line)) (probe.Result, error) {
	return probe.Run(ctx, h.classDir, cfg, onLine)
}

// control sends the JVM a signal: pause SIGSTOP, unpause SIGCONT, stop
// SIGTERM, kill SIGKILL.
func (hostProbe) control(_ context.Context, action string, pid int) error {
	sig := map[string]syscall.Signal{scenario.ActionPause: syscall.SIGSTOP, scenario.ActionUnpause: syscall.SIGCONT,
		scenario.ActionStop: syscall.SIGTERM, scenario.ActionKill: syscall.SIGKILL}[action]
	if sig == 0 {
		return fmt.Errorf("%s: %w", action, engine.ErrUnsupported)
	}
	if pid <= 0 {
		return errors.New("the probe has not reported its pid yet")
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("sending %v to probe %d: %w", sig, pid, err)
	}
	return nil
}

func (hostProbe) close(context.Context) error { return nil }

func (p *ProbeTarget) config(mode probe.Mode) probe.Config {
	c := probe.Config{
		Dir:         p.dataDir,
		SegmentSize: int64(p.Cfg.SegmentSize),
		RecordSize:  int(p.Cfg.RecordSize),
		Batch:       p.Cfg.Batch,
		Rate:        int(p.Cfg.Rate),
		Mode:        mode,
		ErrorDir:    p.LogDir,
		Track:       p.Records,
	}
	if p.Cfg.Heap != "" {
		c.JVMArgs = []string{"-Xmx" + p.Cfg.Heap}
	}
	return c
}

// Start prefills the journal if asked (an append-only run that writes
// Prefill bytes), then starts the probe: replaying first when Replay is set.
func (p *ProbeTarget) Start(ctx context.Context, dataDir string) error {
	if !filepath.IsAbs(dataDir) {
		return fmt.Errorf("data directory %q must be absolute: the JVM runs in the log directory", dataDir)
	}
	if err := os.MkdirAll(p.LogDir, 0o755); err != nil {
		return fmt.Errorf("creating probe log directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(p.LogDir, "probe.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening probe log: %w", err)
	}
	p.mu.Lock()
	p.dataDir, p.log = dataDir, f
	p.mu.Unlock()
	if err := p.proc.prepare(ctx); err != nil {
		return err
	}
	if p.Cfg.Prefill > 0 {
		rs := int64(p.Cfg.RecordSize)
		if rs == 0 {
			rs = 1000
		}
		cfg := p.config(probe.ModeAppendOnly)
		cfg.Rate = 0
		cfg.Records = int64(p.Cfg.Prefill) / (rs + 12)
		res, err := p.proc.run(ctx, cfg, func(l probe.Line) { p.logLine("prefill", l.Text) })
		if err != nil {
			return fmt.Errorf("prefilling the journal: %w", err)
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("prefilling the journal: probe exited with %d: %s", res.ExitCode, lastLines(res, 5))
		}
	}
	mode := probe.ModeAppendOnly
	if p.Cfg.Replay {
		mode = probe.ModeReplayAppend
	}
	p.launch(mode)
	return nil
}

func lastLines(r probe.Result, n int) string {
	ls := r.Lines
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	var s []string
	for _, l := range ls {
		s = append(s, l.Text)
	}
	return strings.Join(s, " | ")
}

func (p *ProbeTarget) logLine(tag, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log != nil {
		fmt.Fprintf(p.log, "%s %s %s\n", time.Now().UTC().Format("15:04:05.000"), tag, text)
	}
}

func (p *ProbeTarget) launch(mode probe.Mode) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p.mu.Lock()
	p.gen++
	gen := p.gen
	p.cancel, p.done, p.pid, p.replay = cancel, done, 0, mode != probe.ModeAppendOnly
	p.records = 0
	p.mu.Unlock()
	go func() {
		defer close(done)
		res, err := p.proc.run(ctx, p.config(mode), func(l probe.Line) { p.onLine(gen, l) })
		p.mu.Lock()
		expected := gen != p.gen || p.closed
		p.mu.Unlock()
		if expected {
			return
		}
		x := engine.Exit{Time: p.Clock.Now(), Name: "probe", Code: res.ExitCode}
		if res.Signal != 0 {
			x.Signal = res.Signal.String()
		}
		if err != nil && res.ExitCode == 0 {
			x.Code = -1
			x.Signal = err.Error()
		}
		p.logLine("exit", fmt.Sprintf("status %d %s hs_err=%s", x.Code, x.Signal, res.HsErr))
		select {
		case p.exits <- x:
		default:
		}
	}()
}

func (p *ProbeTarget) onLine(gen int, l probe.Line) {
	p.logLine(l.Stream, l.Text)
	now := p.Clock.Now()
	select {
	case p.lines <- engine.Line{Time: now, Source: "probe", Text: l.Text}:
	default: // a stalled detector must not stall the JVM's pipes
	}
	pr, ok := probe.ParseProgress(l.Text)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.gen {
		return
	}
	switch pr.Kind {
	case "start":
		if i := strings.Index(l.Text, "pid="); i >= 0 {
			p.pid, _ = strconv.Atoi(strings.Fields(l.Text[i+4:])[0])
		}
	case "replay-mapped":
		// The probe has opened and mapped its segments and is about to
		// read records, as Zeebe's "Processor starts replay of events"
		// comes after the journal is loaded. A fault set here reaches the
		// mapped reads; set at the start line it hit the directory listing
		// and open first (IOException, no SIGBUS; seen on real NFS).
		if p.replay {
			select {
			case p.events <- engine.Event{Time: now, Name: "replay-start", Evidence: []string{l.Text}}:
			default:
			}
		}
	case "append":
		p.records = pr.Records
		if pr.ForceP99 > 0 {
			p.forceP50, p.forceP99 = pr.ForceP50, pr.ForceP99
		}
	}
}

// Restart kills the probe, runs between (dropping the page cache), and
// starts it again replaying its journal, as a restarted broker does.
func (p *ProbeTarget) Restart(ctx context.Context, between func(context.Context) error) error {
	p.stopCurrent(ctx)
	if between != nil {
		if err := between(ctx); err != nil {
			return fmt.Errorf("between stop and start: %w", err)
		}
	}
	p.launch(probe.ModeReplayAppend)
	return nil
}

func (p *ProbeTarget) stopCurrent(ctx context.Context) {
	p.mu.Lock()
	p.gen++ // the coming exit is expected
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
	case <-time.After(15 * time.Second):
	}
}

// Control pauses, unpauses, stops or kills the probe's JVM (signals on
// the host, podman's pause and kill for a container); restart restarts it.
func (p *ProbeTarget) Control(ctx context.Context, action, container string) error {
	if container != "" {
		return fmt.Errorf("the probe has no container %q: %w", container, engine.ErrUnsupported)
	}
	if action == scenario.ActionRestart {
		return p.Restart(ctx, nil)
	}
	p.mu.Lock()
	pid := p.pid
	p.mu.Unlock()
	return p.proc.control(ctx, action, pid)
}

func (p *ProbeTarget) Resolve(context.Context, string) (string, error) {
	return "", fmt.Errorf("the probe has no brokers: %w", engine.ErrUnsupported)
}

func (p *ProbeTarget) Netns(context.Context, string) (string, error) {
	return "", fmt.Errorf("the probe has no network namespace of its own: %w", engine.ErrUnsupported)
}

func (p *ProbeTarget) Exited() <-chan engine.Exit  { return p.exits }
func (p *ProbeTarget) Lines() <-chan engine.Line   { return p.lines }
func (p *ProbeTarget) Events() <-chan engine.Event { return p.events }

// Close kills the probe, removes what its runs left and closes its log.
func (p *ProbeTarget) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.stopCurrent(ctx)
	err := p.proc.close(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log != nil {
		err = errors.Join(err, p.log.Close())
		p.log = nil
	}
	return err
}

// Start (as engine.Load) samples the append rate once a second from the
// records count in the progress lines; a second without progress is a
// rate of 0, so a stalled fsync shows as a drop, not as a missing sample.
func (p *ProbeTarget) startLoad(ctx context.Context) (<-chan journal.LoadSample, error) {
	p.mu.Lock()
	p.stopLoad = make(chan struct{})
	stop := p.stopLoad
	p.mu.Unlock()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		var lastGen int
		lastT := time.Now()
		for {
			select {
			case now := <-t.C:
				p.mu.Lock()
				rec, gen := p.records, p.gen
				f50, f99 := p.forceP50, p.forceP99
				p.forceP50, p.forceP99 = 0, 0 // each report line counts once
				p.mu.Unlock()
				if gen != lastGen {
					last, lastGen = 0, gen
				}
				d := rec - last
				if d < 0 {
					d = 0
				}
				iv := now.Sub(lastT)
				last, lastT = rec, now
				s := journal.LoadSample{T: p.Clock.Now(), Interval: time.Second, Source: "probe", AppendRate: float64(d) / iv.Seconds(), ForceP50: f50, ForceP99: f99}
				select {
				case p.samples <- s:
				default:
				}
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return p.samples, nil
}

// ProbeLoad is the probe as the engine's Load.
type ProbeLoad struct{ P *ProbeTarget }

func (l ProbeLoad) Start(ctx context.Context) (<-chan journal.LoadSample, error) {
	return l.P.startLoad(ctx)
}

func (l ProbeLoad) Stop(context.Context) error {
	l.P.mu.Lock()
	defer l.P.mu.Unlock()
	if l.P.stopLoad != nil {
		close(l.P.stopLoad)
		l.P.stopLoad = nil
	}
	return nil
}
