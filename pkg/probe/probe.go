package probe

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/proctrack"
	probesrc "github.com/nfslab/nfslab/probe"
)

// ErrInvalid marks a bad probe configuration.
var ErrInvalid = errors.New("invalid probe configuration")

// DefaultCacheDir is where compiled probes are kept when none is given.
const DefaultCacheDir = "/var/cache/nfslab/probe"

// JavaRelease is the Java SE release the probe is compiled for (javac
// --release): the oldest JRE it must run on, bookworm's OpenJDK 17, so one
// class file runs there and on trixie's OpenJDK 21 alike, whichever JDK
// compiled it.
const JavaRelease = "17"

// javacArgs are javac's options before the source file.
func javacArgs(out string) []string {
	return []string{"-nowarn", "--release", JavaRelease, "-d", out}
}

// Build compiles the embedded probe source with javac into
// cacheDir/<sha256 of the source and the javac options>/ and returns that
// class directory. A directory that already holds the class for this
// source is reused.
//
// Equivalent to: javac -nowarn --release 17 -d DIR JournalProbe.java
func Build(ctx context.Context, javac, cacheDir string) (string, error) {
	if javac == "" {
		javac = "javac"
	}
	if cacheDir == "" {
		cacheDir = DefaultCacheDir
	}
	src := probesrc.Source()
	// The options are part of the key: a class compiled before --release
	// was given (for the compiling JDK's own release) is not reused.
	sum := sha256.Sum256(append(append([]byte(nil), src...), strings.Join(javacArgs(""), " ")...))
	classDir := filepath.Join(cacheDir, hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(classDir, probesrc.ClassName+".class")); err == nil {
		return classDir, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("creating probe cache %s: %w", cacheDir, err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".build-")
	if err != nil {
		return "", fmt.Errorf("creating probe build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	srcPath := filepath.Join(tmp, probesrc.ClassName+".java")
	if err := os.WriteFile(srcPath, src, 0o644); err != nil {
		return "", fmt.Errorf("writing probe source: %w", err)
	}
	out := filepath.Join(tmp, "classes")
	if err := cmdrun.Run(ctx, javac, append(javacArgs(out), srcPath)...); err != nil {
		return "", fmt.Errorf("compiling probe: %w", err)
	}
	if err := os.Rename(out, classDir); err != nil {
		// Another build won the race: use its result.
		if _, serr := os.Stat(filepath.Join(classDir, probesrc.ClassName+".class")); serr == nil {
			return classDir, nil
		}
		return "", fmt.Errorf("installing compiled probe in %s: %w", classDir, err)
	}
	return classDir, nil
}

// CRC32CIntrinsic reports whether java uses the CRC32C intrinsic
// (UseCRC32CIntrinsics, which needs SSE4.2 on x86). Without it CRC32C runs
// as Java code over Unsafe reads, and a failed mapped read becomes
// java.lang.InternalError instead of the SIGBUS crash.
//
// Equivalent to: java -XX:+UnlockDiagnosticVMOptions -XX:+PrintFlagsFinal
// -version | grep UseCRC32CIntrinsics
func CRC32CIntrinsic(ctx context.Context, java string) (bool, error) {
	if java == "" {
		java = "java"
	}
	out, err := cmdrun.Output(ctx, java, "-XX:+UnlockDiagnosticVMOptions", "-XX:+PrintFlagsFinal", "-version")
	if err != nil {
		return false, fmt.Errorf("reading JVM flags: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[1] == "UseCRC32CIntrinsics" {
			return f[3] == "true", nil
		}
	}
	return false, fmt.Errorf("reading JVM flags: UseCRC32CIntrinsics not listed by %s -XX:+PrintFlagsFinal", java)
}

// Mode chooses what the probe does.
type Mode string

// Modes. The default replays existing segments, then appends, like a
// broker that restarts.
const (
	ModeReplayAppend Mode = "replay-append"
	ModeReplayOnly   Mode = "replay-only"
	ModeAppendOnly   Mode = "append-only"
)

// Config is one probe run.
type Config struct {
	Dir         string        // journal directory (on the storage under test)
	SegmentSize int64         // bytes; 0 means 16 MiB
	RecordSize  int           // payload bytes; 0 means 1000
	Batch       int           // records per force(); 0 means 100
	Rate        int           // records per second; 0 unbounded
	Duration    time.Duration // append time limit; 0 none
	Records     int64         // append count limit; 0 none
	Mode        Mode          // "" means ModeReplayAppend
	// ErrorDir receives hs_err_pid<pid>.log; "" means a new temporary
	// directory. Keep it off the storage under test.
	ErrorDir string
	// Java is the java binary; "" means "java" on PATH.
	Java string
	// JVMArgs are extra JVM options.
	JVMArgs []string
	// Track records the JVM so heal can end it after nfslab is killed;
	// nil records nothing. The JVM gets a parent-death signal either way.
	Track *proctrack.Store
}

// Validate names the first bad value.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: dir is required", ErrInvalid)
	case c.SegmentSize != 0 && (c.SegmentSize < 4096 || c.SegmentSize >= 1<<31):
		return fmt.Errorf("%w: segment size %d is not in [4096, 2GiB)", ErrInvalid, c.SegmentSize)
	case c.RecordSize < 0 || (c.RecordSize > 0 && int64(c.RecordSize)+72 > c.segmentSize()):
		return fmt.Errorf("%w: record size %d does not fit a %d-byte segment", ErrInvalid, c.RecordSize, c.segmentSize())
	case c.Batch < 0:
		return fmt.Errorf("%w: batch %d is negative", ErrInvalid, c.Batch)
	case c.Rate < 0:
		return fmt.Errorf("%w: rate %d is negative", ErrInvalid, c.Rate)
	case c.Duration < 0:
		return fmt.Errorf("%w: duration %v is negative", ErrInvalid, c.Duration)
	case c.Records < 0:
		return fmt.Errorf("%w: records %d is negative", ErrInvalid, c.Records)
	}
	switch c.Mode {
	case "", ModeReplayAppend, ModeReplayOnly, ModeAppendOnly:
	default:
		return fmt.Errorf("%w: mode %q is not one of %s, %s, %s", ErrInvalid, c.Mode, ModeReplayAppend, ModeReplayOnly, ModeAppendOnly)
	}
	return nil
}

func (c Config) segmentSize() int64 {
	if c.SegmentSize == 0 {
		return 16 << 20
	}
	return c.SegmentSize
}

// Args returns the probe's own arguments (after the class name).
func (c Config) Args() []string {
	a := []string{"--dir", c.Dir}
	if c.SegmentSize > 0 {
		a = append(a, "--segment-size", strconv.FormatInt(c.SegmentSize, 10))
	}
	if c.RecordSize > 0 {
		a = append(a, "--record-size", strconv.Itoa(c.RecordSize))
	}
	if c.Batch > 0 {
		a = append(a, "--batch", strconv.Itoa(c.Batch))
	}
	if c.Rate > 0 {
		a = append(a, "--rate", strconv.Itoa(c.Rate))
	}
	if c.Duration > 0 {
		a = append(a, "--duration", strconv.FormatInt(c.Duration.Milliseconds(), 10)+"ms")
	}
	if c.Records > 0 {
		a = append(a, "--records", strconv.FormatInt(c.Records, 10))
	}
	switch c.Mode {
	case ModeReplayOnly:
		a = append(a, "--replay-only")
	case ModeAppendOnly:
		a = append(a, "--no-replay")
	}
	return a
}

// Line is one line the probe (or its JVM) wrote.
type Line struct {
	Stream string // "stdout" or "stderr"
	Text   string
	Time   time.Time
}

// Result is how a run ended.
type Result struct {
	// ExitCode is the exit status as a shell reports it: 128+signal when
	// the JVM died from a signal (134 for the abort after a crash).
	ExitCode int
	Signal   syscall.Signal // 0 unless killed by a signal
	// HsErr is the JVM's crash report (hs_err_pid<pid>.log), "" if none.
	HsErr    string
	ErrorDir string
	Elapsed  time.Duration
	// Lines holds every line written, in order (bounded to the last
	// maxLines).
	Lines []Line
}

// Crashed reports whether the JVM crashed (fatal error report or abort).
func (r Result) Crashed() bool { return r.HsErr != "" || r.Signal == syscall.SIGABRT }

// Output joins all lines, for matching in tests and reports.
func (r Result) Output() string {
	var b strings.Builder
	for _, l := range r.Lines {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

const maxLines = 10000

// Keep appends l to r.Lines, keeping only the last maxLines: however the
// JVM runs (a child here, a container elsewhere), its Result holds the
// same tail.
func (r *Result) Keep(l Line) {
	r.Lines = append(r.Lines, l)
	if len(r.Lines) > maxLines {
		r.Lines = r.Lines[len(r.Lines)-maxLines:]
	}
}

// Command builds the java command line for classDir and cfg.
//
// Equivalent to: java -XX:ErrorFile=DIR/hs_err_pid%p.log
// -XX:+UnlockDiagnosticVMOptions -XX:+UseCRC32CIntrinsics -cp CLASSDIR
// JournalProbe --dir ...
func Command(classDir, errorDir string, cfg Config) []string {
	java := cfg.Java
	if java == "" {
		java = "java"
	}
	args := []string{java,
		"-XX:ErrorFile=" + filepath.Join(errorDir, "hs_err_pid%p.log"),
		// The SIGBUS crash needs the stub; the flag is diagnostic. On a CPU
		// without SSE4.2 the JVM warns and runs without it.
		"-XX:+UnlockDiagnosticVMOptions", "-XX:+UseCRC32CIntrinsics",
		// Not -XX:-CreateCoredumpOnCrash: with it the JVM ends a crash with
		// exit(1) instead of abort(), and the status is no longer 134. Run
		// limits RLIMIT_CORE to 0 instead, so no core file is written.
		"-XX:+UseSerialGC", "-Xmx128m",
	}
	args = append(args, cfg.JVMArgs...)
	args = append(args, "-cp", classDir, probesrc.ClassName)
	return append(args, cfg.Args()...)
}

// Run runs the probe compiled in classDir and waits for it. onLine, if not
// nil, is called for each output line as it arrives (from one goroutine at
// a time). Cancelling ctx kills the JVM. A probe that exits non-zero is not
// an error: the caller reads Result. Errors are for a probe that could not
// run.
func Run(ctx context.Context, classDir string, cfg Config, onLine func(Line)) (res Result, err error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	errDir := cfg.ErrorDir
	if errDir == "" {
		d, err := os.MkdirTemp("", "nfslab-probe-")
		if err != nil {
			return Result{}, fmt.Errorf("creating probe error directory: %w", err)
		}
		errDir = d
		// Keep the directory only when it holds a crash report.
		defer func() {
			if res.HsErr == "" {
				os.RemoveAll(d)
				res.ErrorDir = ""
			}
		}()
	} else if err := os.MkdirAll(errDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("creating probe error directory: %w", err)
	}
	argv := Command(classDir, errDir, cfg)
	cmd := cmdrun.Command(ctx, argv[0], argv[1:]...)
	cmd.Dir = errDir // a JVM writes stray files (core, replay logs) to its cwd
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, fmt.Errorf("starting probe: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return Result{}, fmt.Errorf("starting probe: %w", err)
	}
	res = Result{ErrorDir: errDir}
	start := time.Now()
	// The JVM dies with nfslab (even after SIGKILL) and is recorded for
	// heal; release (after Wait, in this goroutine) drops the record.
	release, err := proctrack.Start(cfg.Track, cmd, "probe")
	if err != nil {
		return Result{}, fmt.Errorf("starting probe %s: %w", strings.Join(argv, " "), err)
	}
	defer release()
	// The JVM needs far longer than this to reach a crash.
	noCoreDump(cmd.Process.Pid)
	var mu sync.Mutex
	var wg sync.WaitGroup
	read := func(stream string, r io.Reader) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := Line{Stream: stream, Text: sc.Text(), Time: time.Now()}
			mu.Lock()
			res.Keep(l)
			if onLine != nil {
				onLine(l)
			}
			mu.Unlock()
		}
	}
	wg.Add(2)
	go read("stdout", stdout)
	go read("stderr", stderr)
	wg.Wait()
	werr := cmd.Wait()
	res.Elapsed = time.Since(start)
	if ps := cmd.ProcessState; ps != nil {
		res.ExitCode = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = ws.Signal()
			res.ExitCode = 128 + int(ws.Signal())
		}
	} else if werr != nil {
		return res, fmt.Errorf("running probe: %w", werr)
	}
	if cmd.Process != nil {
		p := filepath.Join(errDir, fmt.Sprintf("hs_err_pid%d.log", cmd.Process.Pid))
		if _, err := os.Stat(p); err == nil {
			res.HsErr = p
		}
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("running probe: %w", ctx.Err())
	}
	return res, nil
}

// Progress is one parsed progress line of the probe.
type Progress struct {
	// Kind is start, append, append-done, replay, replay-done,
	// replay-corrupt or force-failed.
	Kind     string
	Rate     float64 // append: records per second over the last interval
	Records  int64
	Segments int
	Forces   int64
	Segment  int // replay: index (1-based) of the segment just replayed
	Elapsed  time.Duration
	Err      string // force-failed: the exception text
	// ForceP50 and ForceP99 are append's force() latency percentiles over
	// the interval (0 when it made no force() call).
	ForceP50, ForceP99 time.Duration
}

// ParseProgress parses a "probe: ..." line; ok is false for other lines.
func ParseProgress(line string) (p Progress, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(line), "probe: ")
	if !found {
		return Progress{}, false
	}
	if msg, isErr := strings.CutPrefix(rest, "force failed: "); isErr {
		return Progress{Kind: "force-failed", Err: msg}, true
	}
	words := strings.Fields(rest)
	if len(words) == 0 {
		return Progress{}, false
	}
	p.Kind = words[0]
	kv := words[1:]
	if len(kv) > 0 && !strings.Contains(kv[0], "=") {
		p.Kind += "-" + kv[0]
		kv = kv[1:]
	}
	switch p.Kind {
	case "start", "append", "append-done", "replay", "replay-mapped", "replay-done", "replay-corrupt":
	default:
		return Progress{}, false
	}
	for _, w := range kv {
		k, v, _ := strings.Cut(w, "=")
		switch k {
		case "rate":
			p.Rate, _ = strconv.ParseFloat(strings.TrimSuffix(v, "/s"), 64)
		case "records":
			p.Records, _ = strconv.ParseInt(v, 10, 64)
		case "segments":
			p.Segments, _ = strconv.Atoi(v)
		case "forces":
			p.Forces, _ = strconv.ParseInt(v, 10, 64)
		case "force_p50_ms", "force_p99_ms":
			ms, _ := strconv.ParseFloat(v, 64)
			d := time.Duration(ms * float64(time.Millisecond))
			if k == "force_p50_ms" {
				p.ForceP50 = d
			} else {
				p.ForceP99 = d
			}
		case "segment":
			n, _, _ := strings.Cut(v, "/")
			p.Segment, _ = strconv.Atoi(n)
			if _, tot, ok := strings.Cut(v, "/"); ok {
				p.Segments, _ = strconv.Atoi(tot)
			}
		case "elapsed":
			p.Elapsed, _ = time.ParseDuration(v)
		}
	}
	return p, true
}

// Rates returns the append rate samples found in lines.
func Rates(lines []Line) []float64 {
	var out []float64
	for _, l := range lines {
		if p, ok := ParseProgress(l.Text); ok && p.Kind == "append" {
			out = append(out, p.Rate)
		}
	}
	return out
}

// Contains reports whether any line contains s.
func (r Result) Contains(s string) bool {
	for _, l := range r.Lines {
		if strings.Contains(l.Text, s) {
			return true
		}
	}
	return false
}
