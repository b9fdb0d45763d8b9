package proctrack

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/internal/statefile"
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
	f := statFields(stat)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// statFields returns the fields of a /proc/PID/stat line after the command
// name (field 2, which may hold spaces and parentheses): index 0 is field 3.
func statFields(stat []byte) []string {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

// ParseParent returns field 4 of a /proc/PID/stat line, the parent's PID.
func ParseParent(stat []byte) (int, error) {
	f := statFields(stat)
	if len(f) < 2 {
		return 0, fmt.Errorf("parsing /proc stat %q: no parent field", stat)
	}
	v, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, fmt.Errorf("parsing /proc stat parent %q: %w", f[1], err)
	}
	return v, nil
}

// ParseStartTime returns field 22 of a /proc/PID/stat line.
func ParseStartTime(stat []byte) (uint64, error) {
	if bytes.LastIndexByte(stat, ')') < 0 {
		return 0, fmt.Errorf("parsing /proc stat %q: no command name", stat)
	}
	// Field 3 (state) is index 0, so field 22 is index 19.
	f := statFields(stat)
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

// Signal sends sig to the process id if it still runs (same PID, same
// start time); one that is gone, or whose PID now belongs to another
// process, is done and never signalled. PIDs 0 and 1 (this process group,
// init) are never signalled.
// Equivalent to: kill -SIG PID, after checking /proc/PID/stat.
func Signal(p Procs, id Ident, sig syscall.Signal) error {
	if id.PID <= 1 {
		return nil
	}
	st, err := p.StartTime(id.PID)
	if errors.Is(err, ErrGone) || (err == nil && st != id.Start) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("identifying pid %d: %w", id.PID, err)
	}
	if err := p.Kill(id.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill -%d %d: %w", sig, id.PID, err)
	}
	return nil
}

// Record is one object a running nfslab process owns.
type Record struct {
	Kind  string   `json:"kind"`
	Name  string   `json:"name"`           // what it is, for reports: "probe", "faultfs"
	Owner Ident    `json:"owner"`          // the nfslab process that made it
	Proc  Ident    `json:"proc,omitzero"`  // KindProcess: the child
	Args  []string `json:"args,omitempty"` // KindProcess: its command line
	Path  string   `json:"path,omitempty"` // KindMount: the mountpoint
	// Mounts, for KindProcess, are the mounts the process may leave behind
	// once it has ended (the podman service's storage: the overlay
	// driver's private bind mount of its home outlives the process). The
	// cleanup sweep removes them after the process is gone, as the
	// owner's own stop would have.
	Mounts  *MountScope `json:"mounts,omitempty"`
	Created time.Time   `json:"created"`
}

// MountScope is where a recorded process may leave mounts: at or below
// Roots, except those already there when it started (Before).
type MountScope struct {
	Roots  []string `json:"roots"`
	Before []string `json:"before,omitempty"`
}

// Left returns the mount points among mountpoints that the scope's
// process left: at or below a root and not in Before, deepest first (the
// order to unmount them in).
func (m MountScope) Left(mountpoints []string) []string {
	var out []string
	for _, mp := range mountpoints {
		if slices.Contains(m.Before, mp) || slices.Contains(out, mp) {
			continue
		}
		for _, r := range m.Roots {
			if mp == r || strings.HasPrefix(mp, r+"/") {
				out = append(out, mp)
				break
			}
		}
	}
	slices.Sort(out)
	slices.Reverse(out) // a mount below another sorts after it
	return out
}

// Entry is a record and the key it is stored under (its statefile name).
type Entry struct {
	Key string
	Record
}

// Store keeps records in Dir through internal/statefile. A nil *Store
// records nothing (Start still makes the child die with its parent).
type Store struct {
	Dir   string
	Procs Procs // nil: Linux{}
	// self is this process, read once.
	self atomic.Pointer[Ident]
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

// Put writes r (Owner and Created filled in when zero) and returns a
// function that removes it; removing a missing record is done. The name
// ends in a random part, so that two Stores on one Dir (in one process or
// several) never write over each other's records.
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
	name := fmt.Sprintf("%s-%d-%d-%s", r.Kind, r.Owner.PID, r.Owner.Start, rand.Text())
	if err := statefile.Write(s.Dir, name, r); err != nil {
		return nil, fmt.Errorf("recording %s %s: %w", r.Kind, r.Name, err)
	}
	return func() error { return statefile.Remove(s.Dir, name) }, nil
}

// List returns the records in the store, oldest first; a record that
// cannot be read or decoded is skipped.
func (s *Store) List() ([]Entry, error) {
	if s == nil {
		return nil, nil
	}
	names, err := statefile.List(s.Dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, n := range names {
		var r Record
		if statefile.Read(s.Dir, n, &r) != nil || r.Kind == "" {
			continue
		}
		out = append(out, Entry{Key: n, Record: r})
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return a.Created.Compare(b.Created) })
	return out, nil
}
