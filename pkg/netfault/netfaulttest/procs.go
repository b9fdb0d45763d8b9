package netfaulttest

import (
	"fmt"
	"sync"
	"syscall"

	"github.com/nfslab/nfslab/internal/proctrack"
)

// Procs is a fake process table: it satisfies proctrack.Procs (the
// netfault.Options.Processes seam), so a test sees which recorded
// processes a heal ends and with which signal, and a PID reused by another
// process (another start time) is left alone as by the kernel. Every
// process leads its own process group, as a reaper (its own session) does.
type Procs struct {
	mu    sync.Mutex
	start map[int]uint64
	done  map[int]chan struct{}
	next  uint64
	// Ended lists, in order, the processes signalled to death, and
	// Signals the signal each got.
	Ended   []proctrack.Ident
	Signals []syscall.Signal
}

// NewProcs returns an empty process table.
func NewProcs() *Procs {
	return &Procs{start: map[int]uint64{}, done: map[int]chan struct{}{}, next: 1000}
}

// Start adds a running process with pid (a new start time each call, as
// after PID reuse) and returns it.
func (p *Procs) Start(pid int) proctrack.Ident {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	p.start[pid] = p.next
	p.done[pid] = make(chan struct{})
	return proctrack.Ident{PID: pid, Start: p.next}
}

// Done returns a channel closed when pid is ended or exits (closed at once
// when it does not run).
func (p *Procs) Done(pid int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch, ok := p.done[pid]; ok {
		return ch
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}

// Exit removes pid as if it had exited by itself.
func (p *Procs) Exit(pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remove(pid)
}

func (p *Procs) remove(pid int) {
	if ch, ok := p.done[pid]; ok {
		close(ch)
		delete(p.done, pid)
	}
	delete(p.start, pid)
}

// Running reports whether pid runs.
func (p *Procs) Running(pid int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.start[pid]
	return ok
}

// Count returns how many processes run.
func (p *Procs) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.start)
}

// StartTime implements proctrack.Procs.
func (p *Procs) StartTime(pid int) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.start[pid]
	if !ok {
		return 0, fmt.Errorf("pid %d: %w", pid, proctrack.ErrGone)
	}
	return s, nil
}

// Kill implements proctrack.Procs like kill(2): signal 0 only checks, any
// other signal ends the process (a reaper exits on SIGTERM), a negative
// pid names the group that process leads, and a pid that does not run
// fails with ESRCH.
func (p *Procs) Kill(pid int, sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pid < 0 {
		pid = -pid
	}
	s, ok := p.start[pid]
	if !ok {
		return syscall.ESRCH
	}
	if sig != 0 {
		p.remove(pid)
		p.Ended = append(p.Ended, proctrack.Ident{PID: pid, Start: s})
		p.Signals = append(p.Signals, sig)
	}
	return nil
}
