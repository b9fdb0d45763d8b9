package faultfs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
)

// RuleStats counts what a rule did.
type RuleStats struct {
	ID string `json:"id"`
	// Matched counts operations that matched op, path and range, whether or
	// not the rule fired (probability, count).
	Matched uint64 `json:"matched"`
	// Fired counts operations the rule faulted.
	Fired uint64 `json:"fired"`
	// Blocked is the number of operations waiting in the rule's latency now.
	Blocked int `json:"blocked"`
	// Exhausted is true once a rule with a Count has fired Count times.
	Exhausted bool `json:"exhausted"`
}

// Engine holds the rules and decides, per operation, whether to fault it.
// It has no FUSE dependency so its logic is tested without a mount.
type Engine struct {
	clock clock.Clock
	rand  func() float64

	mu     sync.Mutex
	rules  []*ruleState
	nextID int
	closed chan struct{}
	once   sync.Once
}

type ruleState struct {
	rule    Rule
	matched uint64
	fired   uint64
	blocked int
	cleared chan struct{} // closed when the rule is removed
}

// NewEngine returns an engine. rnd returns uniform numbers in [0, 1); nil
// uses math/rand/v2. c nil uses the wall clock.
func NewEngine(c clock.Clock, rnd func() float64) *Engine {
	if c == nil {
		c = clock.Real{}
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	return &Engine{clock: c, rand: rnd, closed: make(chan struct{})}
}

// Set validates r and adds it, or replaces the rule with the same ID
// (operations blocked in the old rule's latency are released). It returns
// the rule as stored, with defaults and ID filled in.
func (e *Engine) Set(r Rule) (Rule, error) {
	r = r.WithDefaults()
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.ID == "" {
		for {
			e.nextID++
			id := fmt.Sprintf("r%d", e.nextID)
			if e.find(id) < 0 {
				r.ID = id
				break
			}
		}
	}
	st := &ruleState{rule: r, cleared: make(chan struct{})}
	if i := e.find(r.ID); i >= 0 {
		close(e.rules[i].cleared)
		e.rules[i] = st
	} else {
		e.rules = append(e.rules, st)
	}
	return r, nil
}

func (e *Engine) find(id string) int {
	for i, s := range e.rules {
		if s.rule.ID == id {
			return i
		}
	}
	return -1
}

// Clear removes the rule id; operations blocked in its latency proceed.
func (e *Engine) Clear(id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.find(id)
	if i < 0 {
		return fmt.Errorf("clearing %q: %w", id, ErrNotFound)
	}
	close(e.rules[i].cleared)
	e.rules = append(e.rules[:i], e.rules[i+1:]...)
	return nil
}

// ClearAll removes every rule and returns their IDs.
func (e *Engine) ClearAll() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]string, 0, len(e.rules))
	for _, s := range e.rules {
		close(s.cleared)
		ids = append(ids, s.rule.ID)
	}
	e.rules = nil
	return ids
}

// Rules returns the rules in evaluation order.
func (e *Engine) Rules() []Rule {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Rule, len(e.rules))
	for i, s := range e.rules {
		out[i] = s.rule
	}
	return out
}

// Stats returns per-rule counters in evaluation order.
func (e *Engine) Stats() []RuleStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]RuleStats, len(e.rules))
	for i, s := range e.rules {
		out[i] = RuleStats{ID: s.rule.ID, Matched: s.matched, Fired: s.fired, Blocked: s.blocked,
			Exhausted: s.rule.Count > 0 && s.fired >= uint64(s.rule.Count)}
	}
	return out
}

// Close releases every operation blocked in a latency with EIO and makes
// later latencies return at once. Called on unmount.
func (e *Engine) Close() { e.once.Do(func() { close(e.closed) }) }

// Check decides the fate of one operation on rel (path relative to the
// mount root). off and size describe the byte range of reads and writes
// (size 0 for other operations). It blocks for a matching rule's latency
// and returns the errno to fail with, or 0 to proceed. The first rule in
// order that fires decides.
func (e *Engine) Check(ctx context.Context, op Op, rel string, off, size int64) syscall.Errno {
	e.mu.Lock()
	var hit *ruleState
	for _, s := range e.rules {
		r := &s.rule
		if r.Op != OpAny && r.Op != op {
			continue
		}
		if !matchPath(r.PathGlob, rel) {
			continue
		}
		if (op == OpRead || op == OpWrite) && !overlaps(r.Offset, r.Length, off, size) {
			continue
		}
		s.matched++
		if r.Count > 0 && s.fired >= uint64(r.Count) {
			continue
		}
		if r.Prob < 1 && e.rand() >= r.Prob {
			continue
		}
		s.fired++
		hit = s
		break
	}
	if hit == nil {
		e.mu.Unlock()
		return 0
	}
	errno, lat, cleared := syscall.Errno(hit.rule.Errno), time.Duration(hit.rule.Latency), hit.cleared
	if lat <= 0 {
		e.mu.Unlock()
		return errno
	}
	hit.blocked++
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		hit.blocked--
		e.mu.Unlock()
	}()
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case <-e.clock.After(lat):
		return errno
	case <-cleared:
		// The fault was healed while the operation waited: like a server
		// that came back, the operation now proceeds.
		return 0
	case <-e.closed:
		return syscall.EIO
	case <-done:
		// The kernel sent FUSE_INTERRUPT (the caller got a signal).
		return syscall.EINTR
	}
}

// overlaps reports whether the request [off, off+size) meets the rule range
// [ro, ro+rl) (rl 0: to the end of the file). A request of size 0 overlaps
// when off lies in the range.
func overlaps(ro, rl, off, size int64) bool {
	if ro == 0 && rl == 0 {
		return true
	}
	end := off + size
	if size == 0 {
		end = off + 1
	}
	if end <= ro {
		return false
	}
	return rl == 0 || off < ro+rl
}
