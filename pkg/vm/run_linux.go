package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/clock"
)

// Session boots the lab VM from a cached image.
type Session struct {
	Image Image
	Boot  BootConfig
	Cmd   Commander
	Clock clock.Clock
	Log   *slog.Logger
	// Console receives the guest's serial console, each line prefixed.
	Console io.Writer
	// Prober tests KVM; nil means the real one.
	Prober Prober
	// Kernel, when set, boots instead of the image's own kernel and
	// initrd (nfslab vm kernel: everything built in, no initrd).
	Kernel *Kernel
}

// machine is the boot of the session's image with its kernel choice.
func (s Session) machine(disk, share string, acc Accel) Machine {
	m := Machine{Kernel: s.Image.Path(s.Image.Kernel), Initrd: s.Image.Path(s.Image.Initrd), Disk: disk,
		Share: share, Accel: acc, Boot: s.Boot}
	if s.Kernel != nil {
		m.Kernel, m.Initrd, m.Cmdline = s.Kernel.Path(s.Kernel.Image), "", append([]string(nil), s.Kernel.Cmdline...)
	}
	return m
}

// Input is what one boot runs.
type Input struct {
	Job Job
	// Binary is the nfslab executable to pass in; it must be static.
	Binary string
	// Files maps a path on the share (e.g. "scenarios") to a host file or
	// directory copied there before boot.
	Files map[string]string
	// WorkDir holds the share, the overlay and the console log.
	WorkDir string
	Timeout time.Duration
	// HangTimeout ends the boot when the agent's heartbeat has stood
	// still this long (0: DefaultHangTimeout).
	HangTimeout time.Duration
}

// Result is what came back from the guest.
type Result struct {
	Status     Status
	Accel      Accel
	ShareDir   string
	ConsoleLog string
	BootTime   time.Duration // qemu start to the agent's first status line
	Total      time.Duration
	// Hung is why the host ended a guest that stopped answering, if it
	// did (see WatchHeartbeat).
	Hung string
}

// ShareDir is the directory exported to the guest inside a work dir.
func ShareDir(workDir string) string { return filepath.Join(workDir, "share") }

// Prepare lays out the share: bin/nfslab, the job, and the extra files.
func Prepare(in Input) error {
	if err := in.Job.Validate(); err != nil {
		return err
	}
	if err := CheckStatic(in.Binary); err != nil {
		return err
	}
	share := ShareDir(in.WorkDir)
	if strings.Contains(share, ",") {
		return fmt.Errorf("%w: work dir %q contains a comma, which qemu's option syntax cannot carry", ErrInvalid, in.WorkDir)
	}
	for _, d := range []string{"bin", "logs", "runs"} {
		if err := os.MkdirAll(filepath.Join(share, d), 0o755); err != nil {
			return fmt.Errorf("preparing share: %w", err)
		}
	}
	if err := copyFileMode(in.Binary, filepath.Join(share, "bin", "nfslab"), 0o755); err != nil {
		return err
	}
	for dst, src := range in.Files {
		if err := copyTree(src, filepath.Join(share, dst)); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(in.Job, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding job: %w", err)
	}
	if err := os.WriteFile(filepath.Join(share, JobFile), b, 0o644); err != nil {
		return fmt.Errorf("writing job: %w", err)
	}
	return nil
}

// chooseAccel resolves "auto" for this session.
func (s Session) chooseAccel(ctx context.Context) (Accel, error) {
	p := s.Prober
	if p == nil {
		p = ExecProber{}
	}
	a, notes, err := ChooseAccel(ctx, s.Boot.Accel, s.machine("", "", Accel{}).Kernel, DevKVMUsable, p, 8*time.Second)
	for _, n := range notes {
		s.Log.Info("vm: kvm not used", "reason", n)
	}
	if err != nil {
		return Accel{}, err
	}
	if a.Name == "tcg" {
		s.Log.Info("vm: using TCG emulation (slow but works everywhere)")
	}
	return a, nil
}

// overlay makes the per-run qcow2 over the cached raw base image.
func (s Session) overlay(ctx context.Context, workDir string) (string, error) {
	ov := filepath.Join(workDir, "overlay.qcow2")
	_ = os.Remove(ov)
	err := s.Cmd.Run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", s.Image.Path(s.Image.Disk), ov)
	if err != nil {
		return "", fmt.Errorf("creating disk overlay: %w", err)
	}
	return ov, nil
}

// Run boots the VM once, lets the agent run in.Job, and returns its status.
// A guest that does not power off within in.Timeout is killed.
func (s Session) Run(ctx context.Context, in Input) (Result, error) {
	start := s.Clock.Now()
	res := Result{ShareDir: ShareDir(in.WorkDir), ConsoleLog: filepath.Join(in.WorkDir, "console.log")}
	if err := Prepare(in); err != nil {
		return res, err
	}
	acc, err := s.chooseAccel(ctx)
	if err != nil {
		return res, err
	}
	res.Accel = acc
	ov, err := s.overlay(ctx, in.WorkDir)
	if err != nil {
		return res, err
	}
	defer os.Remove(ov)
	m := s.machine(ov, res.ShareDir, acc)
	logf, err := os.Create(res.ConsoleLog)
	if err != nil {
		return res, fmt.Errorf("creating console log: %w", err)
	}
	defer logf.Close()

	rctx, cancel := context.WithTimeout(ctx, in.Timeout)
	defer cancel()
	// qctx also ends when the agent's heartbeat stops, with that as cause.
	qctx, stopQEMU := context.WithCancelCause(rctx)
	var watching sync.WaitGroup
	defer watching.Wait()
	defer stopQEMU(nil)
	hang := in.HangTimeout
	if hang <= 0 {
		hang = DefaultHangTimeout
	}
	cmd := cmdrun.Command(qctx, QEMUBinary, m.Args()...)
	cmd.Stdin = nil
	var booted time.Time
	var once sync.Once
	lw := &lineWriter{prefix: "vm| ", out: s.Console, onLine: func(l string) {
		if strings.Contains(l, "nfslab-agent: start") {
			once.Do(func() {
				booted = s.Clock.Now()
				watching.Go(func() {
					if err := WatchHeartbeat(qctx, s.Clock, filepath.Join(res.ShareDir, HeartbeatFile), HeartbeatEvery, hang); err != nil {
						s.Log.Warn("vm: ending the guest", "err", err)
						stopQEMU(err)
					}
				})
			})
		}
	}}
	var tail bytes.Buffer
	cmd.Stdout = io.MultiWriter(logf, lw)
	cmd.Stderr = io.MultiWriter(logf, lw, &limitedBuffer{buf: &tail, max: 8192})
	cmd.WaitDelay = 5 * time.Second
	s.Log.Info("vm: booting", "accel", acc.String(), "kernel", m.Kernel, "timeout", in.Timeout, "console", res.ConsoleLog)
	runErr := cmd.Run()
	lw.Flush()
	res.Total = s.Clock.Now().Sub(start)
	if !booted.IsZero() {
		res.BootTime = booted.Sub(start)
	}
	st, stErr := readStatus(res.ShareDir, res.ConsoleLog)
	res.Status = st
	hung := context.Cause(qctx)
	switch {
	case errors.Is(hung, ErrGuestHung) && ctx.Err() == nil:
		res.Hung = hung.Error()
		return res, fmt.Errorf("%w (console: %s)", hung, res.ConsoleLog)
	case rctx.Err() != nil && ctx.Err() == nil:
		return res, fmt.Errorf("guest did not power off within %s (console: %s)", in.Timeout, res.ConsoleLog)
	case ctx.Err() != nil:
		return res, ctx.Err()
	case runErr != nil:
		return res, fmt.Errorf("running qemu: %w: %s", runErr, strings.TrimSpace(tail.String()))
	case stErr != nil:
		return res, fmt.Errorf("%w (console: %s)", stErr, res.ConsoleLog)
	case !st.Complete:
		return res, fmt.Errorf("guest agent did not finish its job (console: %s)", res.ConsoleLog)
	}
	return res, nil
}

// Shell boots the VM with an interactive login shell on the serial console
// attached to the terminal. The share is at /mnt/nfslab in the guest.
func (s Session) Shell(ctx context.Context, workDir, binary string, stdin io.Reader, stdout io.Writer) error {
	if err := CheckStatic(binary); err != nil {
		return err
	}
	share := ShareDir(workDir)
	if err := os.MkdirAll(filepath.Join(share, "bin"), 0o755); err != nil {
		return fmt.Errorf("preparing share: %w", err)
	}
	if err := copyFileMode(binary, filepath.Join(share, "bin", "nfslab"), 0o755); err != nil {
		return err
	}
	acc, err := s.chooseAccel(ctx)
	if err != nil {
		return err
	}
	ov, err := s.overlay(ctx, workDir)
	if err != nil {
		return err
	}
	defer os.Remove(ov)
	m := s.machine(ov, share, acc)
	m.Interactive, m.Cmdline = true, append(m.Cmdline, "nfslab.mode=shell")
	cmd := cmdrun.Command(ctx, QEMUBinary, m.Args()...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stdout
	fmt.Fprintln(stdout, "nfslab vm shell: booting (Ctrl-A X quits qemu; `exit` powers the guest off)")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running qemu: %w", err)
	}
	return nil
}

// readStatus prefers status.json on the share and falls back to the status
// line on the serial console.
func readStatus(share, consoleLog string) (Status, error) {
	if b, err := os.ReadFile(filepath.Join(share, StatusFile)); err == nil {
		return ParseStatus(b)
	}
	b, err := os.ReadFile(consoleLog)
	if err != nil {
		return Status{}, fmt.Errorf("%w: %v", ErrNoStatus, err)
	}
	return StatusFromConsole(b)
}

// DevKVMUsable reports whether /dev/kvm opens read-write.
func DevKVMUsable() bool {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// ExecProber runs qemu for the KVM trial boot.
type ExecProber struct{}

// Prints starts qemu, watches stdout for want, and kills qemu (by PID, via
// the context) once it has seen it or d has passed.
func (ExecProber) Prints(ctx context.Context, args []string, want string, d time.Duration) (bool, string, error) {
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd := cmdrun.Command(pctx, QEMUBinary, args...)
	var out bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = &limitedBuffer{buf: &out, max: 8192}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return false, "", fmt.Errorf("starting %s: %w", QEMUBinary, err)
	}
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), want) {
				seen = true
				found <- true
				cancel()
			}
		}
		if !seen {
			found <- false
		}
	}()
	_ = cmd.Wait()
	pw.Close()
	ok := <-found
	return ok, out.String(), nil
}

// lineWriter prefixes each complete line and passes it on.
type lineWriter struct {
	mu     sync.Mutex
	prefix string
	out    io.Writer
	onLine func(string)
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(string(bytes.TrimRight(w.buf[:i], "\r")))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) emit(line string) {
	if w.onLine != nil {
		w.onLine(line)
	}
	if w.out != nil {
		fmt.Fprintf(w.out, "%s%s\n", w.prefix, line)
	}
}

// Flush writes a final unterminated line.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}

// limitedBuffer keeps the last max bytes written.
type limitedBuffer struct {
	mu  sync.Mutex
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.buf.Len() > l.max {
		b := l.buf.Bytes()[l.buf.Len()-l.max:]
		nb := append([]byte(nil), b...)
		l.buf.Reset()
		l.buf.Write(nb)
	}
	return len(p), nil
}

func copyFileMode(src, dst string, mode os.FileMode) error {
	if err := copyFile(src, dst); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// copyTree copies a file or a directory tree (regular files and dirs only).
func copyTree(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("copying %s into the share: %w", src, err)
	}
	if !st.IsDir() {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return copyFileMode(src, dst, st.Mode().Perm())
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFileMode(p, target, info.Mode().Perm())
		}
		return nil
	})
}

// CollectRuns moves the run directories the guest wrote under share/runs to
// outDir and returns their new paths.
func CollectRuns(share, outDir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(share, "runs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading guest runs: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", outDir, err)
	}
	var out []string
	for _, e := range entries {
		src := filepath.Join(share, "runs", e.Name())
		dst := filepath.Join(outDir, e.Name())
		if err := os.Rename(src, dst); err != nil {
			if err := copyTree(src, dst); err != nil {
				return out, err
			}
		}
		out = append(out, dst)
	}
	return out, nil
}

// workOwner names the process that made a work directory (a
// proctrack.Ident as JSON), so that the next run can tell a live run's
// directory from one a killed run left.
const workOwner = "owner.json"

// MakeWork creates a work directory (prefix "run-" or "shell-") below an
// image dir and records this process as its owner.
func MakeWork(imageDir, prefix string) (string, error) {
	work, err := os.MkdirTemp(imageDir, prefix)
	if err != nil {
		return "", fmt.Errorf("creating vm work dir: %w", err)
	}
	id, err := proctrack.Of(proctrack.Linux{}, os.Getpid())
	if err == nil {
		b, _ := json.Marshal(id)
		err = os.WriteFile(filepath.Join(work, workOwner), b, 0o644)
	}
	if err != nil {
		os.RemoveAll(work)
		return "", fmt.Errorf("recording the vm work dir's owner: %w", err)
	}
	return work, nil
}

// DisownWork drops a work directory's owner record: a kept directory
// (--keep) is then swept only by age.
func DisownWork(work string) { _ = os.Remove(filepath.Join(work, workOwner)) }

// SweepWork removes work directories (run-*, shell-*) below an image dir
// that a killed host left: those whose recorded owner no longer runs
// (SIGKILL, a CI timeout), and, without an owner record, those older than
// maxAge. A live run never lasts that long (its --timeout bounds it).
func SweepWork(imageDir string, maxAge time.Duration, now time.Time, procs proctrack.Procs) ([]string, error) {
	var removed []string
	for _, pat := range []string{"run-*", "shell-*"} {
		m, err := filepath.Glob(filepath.Join(imageDir, pat))
		if err != nil {
			return removed, err
		}
		for _, d := range m {
			st, err := os.Stat(d)
			if err != nil || !st.IsDir() {
				continue
			}
			var owner proctrack.Ident
			if b, err := os.ReadFile(filepath.Join(d, workOwner)); err == nil && json.Unmarshal(b, &owner) == nil {
				if proctrack.Alive(procs, owner) {
					continue
				}
			} else if now.Sub(st.ModTime()) < maxAge {
				continue
			}
			if err := os.RemoveAll(d); err != nil {
				return removed, fmt.Errorf("removing stale vm work dir: %w", err)
			}
			removed = append(removed, d)
		}
	}
	return removed, nil
}
