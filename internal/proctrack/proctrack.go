package proctrack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Record kinds.
const (
	// KindProcess is a child process: Proc is the child, Owner the nfslab
	// process that started it.
	KindProcess = "process"
	// KindMount is a mount served by Owner (a faultfs FUSE mount): when
	// Owner is gone, nobody serves it.
	KindMount = "mount"
)

// ErrGone means no process has that PID (or it has another start time).
var ErrGone = errors.New("no such process")

// Ident identifies a process across PID reuse.
type Ident struct {
	PID int `json:"pid"`
	// Start is field 22 of /proc/PID/stat: clock ticks after boot.
	Start uint64 `json:"start"`
}

func (id Ident) String() string { return fmt.Sprintf("%d@%d", id.PID, id.Start) }

// Procs is the kernel's process table.
type Procs interface {
	// StartTime returns the start time of pid; ErrGone if there is none.
	StartTime(pid int) (uint64, error)
	// Kill sends sig to pid (a negative pid: its process group).
	// Equivalent to: kill -SIG PID.
	Kill(pid int, sig syscall.Signal) error
}

// Linux reads /proc (or Proc, for tests) and sends real signals.
type Linux struct{ Proc string }

func (l Linux) proc() string {
	if l.Proc == "" {
		return "/proc"
	}
	return l.Proc
}

// StartTime parses field 22 of PROC/pid/stat. The command name (field 2)
// may hold spaces and parentheses, so fields are counted after its last ')'.
// A zombie whose threads have all exited holds nothing and only waits for
// its parent (init, after a crash) to reap it: it counts as gone. A
// zombie leader with threads still in the kernel (stuck on a dead FUSE
// mount) does not.
func (l Linux) StartTime(pid int) (uint64, error) {
	dir := filepath.Join(l.proc(), strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return 0, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	if err != nil {
		return 0, err
	}
	if state(b) == "Z" {
		if ts, err := os.ReadDir(filepath.Join(dir, "task")); err == nil && len(ts) <= 1 {
			return 0, fmt.Errorf("pid %d is a zombie: %w", pid, ErrGone)
		}
	}
	return ParseStartTime(b)
}

// state returns field 3 of a /proc/PID/stat line ("" if unparsable).
func state(stat []byte) string {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// ParseStartTime returns field 22 of a /proc/PID/stat line.
func ParseStartTime(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc stat %q: no command name", stat)
	}
	// After ") ": field 3 (state) is index 0, so field 22 is index 19.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("parsing /proc stat %q: %d fields after the command name, want at least 20", stat, len(f))
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc stat start time %q: %w", f[19], err)
	}
	return v, nil
}

func (Linux) Kill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// Of returns the identity of pid.
func Of(p Procs, pid int) (Ident, error) {
	st, err := p.StartTime(pid)
	if err != nil {
		return Ident{}, err
	}
	return Ident{PID: pid, Start: st}, nil
}

// Alive reports whether the process id still runs (same PID, same start).
func Alive(p Procs, id Ident) bool {
	if id.PID <= 0 {
		return false
	}
	st, err := p.StartTime(id.PID)
	return err == nil && st == id.Start
}

// Record is one object a running nfslab process owns.
type Record struct {
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`           // what it is, for reports: "probe", "faultfs"
	Owner   Ident     `json:"owner"`          // the nfslab process that made it
	Proc    Ident     `json:"proc,omitzero"`  // KindProcess: the child
	Args    []string  `json:"args,omitempty"` // KindProcess: its command line
	Path    string    `json:"path,omitempty"` // KindMount: the mountpoint
	Created time.Time `json:"created"`
}

// Entry is a record and the file that holds it.
type Entry struct {
	File string
	Record
}

// Store keeps records in Dir. A nil *Store records nothing (Start still
// makes the child die with its parent).
type Store struct {
	Dir   string
	Procs Procs // nil: Linux{}
	// self is this process, read once.
	self atomic.Pointer[Ident]
	seq  atomic.Uint64
}

// NewStore returns a store in dir ("" records nothing: nil).
func NewStore(dir string) *Store {
	if dir == "" {
		return nil
	}
	return &Store{Dir: dir, Procs: Linux{}}
}

func (s *Store) procs() Procs {
	if s.Procs == nil {
		return Linux{}
	}
	return s.Procs
}

// Self returns the identity of the calling process.
func (s *Store) Self() (Ident, error) {
	if id := s.self.Load(); id != nil {
		return *id, nil
	}
	id, err := Of(s.procs(), os.Getpid())
	if err != nil {
		return Ident{}, fmt.Errorf("reading own start time: %w", err)
	}
	s.self.Store(&id)
	return id, nil
}

// Put writes r (Owner and Created filled in when zero) atomically and
// returns a function that removes it; removing a missing record is done.
func (s *Store) Put(r Record) (remove func() error, err error) {
	if s == nil {
		return func() error { return nil }, nil
	}
	if r.Owner.PID == 0 {
		if r.Owner, err = s.Self(); err != nil {
			return nil, err
		}
	}
	if r.Created.IsZero() {
		r.Created = time.Now().UTC()
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating process record directory: %w", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s-%d-%d-%d.json", r.Kind, r.Owner.PID, r.Owner.Start, s.seq.Add(1))
	p := filepath.Join(s.Dir, name)
	if err := writeAtomic(p, b); err != nil {
		return nil, fmt.Errorf("recording %s %s: %w", r.Kind, r.Name, err)
	}
	return func() error {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing record %s: %w", p, err)
		}
		return nil
	}, nil
}

// writeAtomic writes b to p through a temporary file in the same
// directory and a rename, so a reader (heal after a SIGKILL) sees the
// whole record or none.
func writeAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-")
	if err != nil {
		return err
	}
	_, werr := f.Write(append(b, '\n'))
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), p)
	}
	if werr != nil {
		os.Remove(f.Name())
	}
	return werr
}

// List returns the records in the store, oldest first; unreadable files
// (a partial temporary file) are skipped.
func (s *Store) List() ([]Entry, error) {
	if s == nil {
		return nil, nil
	}
	ms, err := filepath.Glob(filepath.Join(s.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, m := range ms {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		var r Record
		if json.Unmarshal(b, &r) != nil || r.Kind == "" {
			continue
		}
		out = append(out, Entry{File: m, Record: r})
	}
	sortByCreated(out)
	return out, nil
}

func sortByCreated(es []Entry) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Created.Before(es[j-1].Created); j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// Start starts cmd so that it dies with this process, and records it in s
// (nil: not recorded). The child gets SIGKILL when the thread that forked
// it exits (Pdeathsig) and runs in its own process group (so heal can end
// its descendants too, and a terminal's Ctrl-C reaches nfslab, which then
// stops it in order).
//
// Pdeathsig is tied to the forking OS thread, not to the process: the Go
// runtime ends a thread when a goroutine locked to it exits (netns code
// does that on purpose), which would kill the child early. So Start locks
// the calling goroutine to its thread, and release unlocks it: call
// release from the same goroutine once cmd.Wait has returned. release
// also removes the record.
func Start(s *Store, cmd *exec.Cmd, name string) (release func(), err error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr.Setpgid = true
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	remove := func() error { return nil }
	if s != nil {
		id, err := Of(s.procs(), cmd.Process.Pid)
		if err == nil {
			remove, err = s.Put(Record{Kind: KindProcess, Name: name, Proc: id, Args: cmd.Args})
		}
		if err != nil {
			// Not recorded means heal could not find it: do not run it.
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("recording %s: %w", name, err)
		}
	}
	return func() {
		_ = remove()
		runtime.UnlockOSThread()
	}, nil
}
