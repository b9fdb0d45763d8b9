package detect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/journal"
)

// Scan reads r to EOF through m and flushes it.
func (m *Matcher) Scan(r io.Reader) error {
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m.Write(buf[:n]) //nolint:errcheck // never fails
		}
		if errors.Is(err, io.EOF) {
			m.Flush()
			return nil
		}
		if err != nil {
			m.Flush()
			return fmt.Errorf("reading log: %w", err)
		}
	}
}

// ScanAll matches all of r and returns the hits.
func ScanAll(r io.Reader, opts Options) ([]journal.Hit, error) {
	var hits []journal.Hit
	m, err := New(opts, func(h journal.Hit) { hits = append(hits, h) })
	if err != nil {
		return nil, err
	}
	err = m.Scan(r)
	return hits, err
}

// Follow feeds a live stream (container logs) through m until r ends or ctx
// is done. Grouped events whose end has not arrived are emitted after idle
// without new data (default 500 ms), so a stack trace at the end of a burst
// is not held back until the next log line.
func Follow(ctx context.Context, r io.Reader, m *Matcher, clk clock.Clock, idle time.Duration) error {
	if clk == nil {
		clk = clock.Real{}
	}
	if idle <= 0 {
		idle = 500 * time.Millisecond
	}
	type chunk struct {
		b   []byte
		err error
	}
	ch := make(chan chunk)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			buf := make([]byte, 64<<10)
			n, err := r.Read(buf)
			select {
			case ch <- chunk{buf[:n], err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var timer <-chan time.Time
	for {
		select {
		case c := <-ch:
			if len(c.b) > 0 {
				m.Write(c.b) //nolint:errcheck // never fails
				timer = clk.After(idle)
			}
			if errors.Is(c.err, io.EOF) {
				m.Flush()
				return nil
			}
			if c.err != nil {
				m.Flush()
				return fmt.Errorf("reading log stream: %w", c.err)
			}
		case <-timer:
			m.FlushGroups()
			timer = nil
		case <-ctx.Done():
			m.Flush()
			return ctx.Err()
		}
	}
}
