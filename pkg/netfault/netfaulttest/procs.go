package netfaulttest

import (
	"fmt"
	"io/fs"
	"sync"

	"github.com/nfslab/nfslab/pkg/netfault"
)

// Procs is a fake process table: it satisfies netfault.Processes, so a
// test sees which recorded processes a heal ends, and a PID reused by
// another process (another start time) is left alone as by the kernel.
type Procs struct {
	mu    sync.Mutex
	start map[int]uint64
	done  map[int]chan struct{}
	next  uint64
	// Ended lists, in order, the processes End signalled.
	Ended []netfault.Proc
}

// NewProcs returns an empty process table.
func NewProcs() *Procs {
	return &Procs{start: map[int]uint64{}, done: map[int]chan struct{}{}, next: 1000}
}

// Start adds a running process with pid (a new start time each call, as
// after PID reuse) and returns it.
func (p *Procs) Start(pid int) netfault.Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	p.start[pid] = p.next
	p.done[pid] = make(chan struct{})
	return netfault.Proc{PID: pid, Start: p.next}
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

// Identify implements netfault.Processes.
func (p *Procs) Identify(pid int) (netfault.Proc, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.start[pid]
	if !ok {
		return netfault.Proc{}, fmt.Errorf("/proc/%d/stat: %w", pid, fs.ErrNotExist)
	}
	return netfault.Proc{PID: pid, Start: s}, nil
}

// End implements netfault.Processes: the process exits at once if it is
// still the one recorded.
func (p *Procs) End(want netfault.Proc) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.start[want.PID]; ok && s == want.Start {
		p.remove(want.PID)
		p.Ended = append(p.Ended, want)
	}
	return nil
}
