package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is the subset of the time package nfslab depends on.
type Clock interface {
	Now() time.Time
	// After behaves like time.After.
	After(d time.Duration) <-chan time.Time
	// AfterFunc behaves like time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
	// Sleep behaves like time.Sleep.
	Sleep(d time.Duration)
}

// Timer is the part of *time.Timer that callers use.
type Timer interface {
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time                         { return time.Now() }
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (Real) Sleep(d time.Duration)                  { time.Sleep(d) }
func (Real) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, f)
}

// Fake is a manually advanced clock for tests. Timers fire synchronously
// inside Advance, in deadline order.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
	seq     int
}

type fakeWaiter struct {
	at      time.Time
	seq     int
	fn      func()
	ch      chan time.Time
	stopped bool
	fake    *Fake
}

func (w *fakeWaiter) Stop() bool {
	w.fake.mu.Lock()
	defer w.fake.mu.Unlock()
	if w.stopped {
		return false
	}
	w.stopped = true
	for i, x := range w.fake.waiters {
		if x == w {
			w.fake.waiters = append(w.fake.waiters[:i], w.fake.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) add(d time.Duration, fn func(), ch chan time.Time) *fakeWaiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	w := &fakeWaiter{at: f.now.Add(d), seq: f.seq, fn: fn, ch: ch, fake: f}
	f.waiters = append(f.waiters, w)
	return w
}

func (f *Fake) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	f.add(d, nil, ch)
	return ch
}

func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer { return f.add(d, fn, nil) }

// Sleep blocks until another goroutine advances the clock past d.
func (f *Fake) Sleep(d time.Duration) { <-f.After(d) }

// Waiters reports how many timers are pending; tests use it to know that a
// goroutine has reached its wait before advancing.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// Advance moves the clock forward by d, firing every timer that falls due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	target := f.now.Add(d)
	f.mu.Unlock()
	for {
		f.mu.Lock()
		sort.SliceStable(f.waiters, func(i, j int) bool {
			if f.waiters[i].at.Equal(f.waiters[j].at) {
				return f.waiters[i].seq < f.waiters[j].seq
			}
			return f.waiters[i].at.Before(f.waiters[j].at)
		})
		if len(f.waiters) == 0 || f.waiters[0].at.After(target) {
			f.now = target
			f.mu.Unlock()
			return
		}
		w := f.waiters[0]
		f.waiters = f.waiters[1:]
		w.stopped = true
		if w.at.After(f.now) {
			f.now = w.at
		}
		now := f.now
		f.mu.Unlock()
		if w.ch != nil {
			w.ch <- now
		}
		if w.fn != nil {
			w.fn()
		}
	}
}
