package load

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxRate is the highest creation rate accepted, per second.
const MaxRate = 2000

// ParseRate parses a rate: "0.2/s", "5/s", "300/m", "1/5s", "12/h", or a
// bare number of instances per second. It returns instances per second.
func ParseRate(s string) (float64, error) {
	in := strings.TrimSpace(s)
	num, per, found := strings.Cut(in, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || !(n > 0) || math.IsInf(n, 0) {
		return 0, fmt.Errorf("rate %q: want a positive count like 0.2/s, 300/m or 1/5s", s)
	}
	if !found {
		return checkRate(s, n)
	}
	per = strings.TrimSpace(per)
	var d time.Duration
	switch per {
	case "s", "sec":
		d = time.Second
	case "m", "min":
		d = time.Minute
	case "h":
		d = time.Hour
	default:
		if d, err = time.ParseDuration(per); err != nil || d <= 0 {
			return 0, fmt.Errorf("rate %q: unit %q is not s, m, h or a duration like 5s", s, per)
		}
	}
	return checkRate(s, n/d.Seconds())
}

func checkRate(s string, r float64) (float64, error) {
	if r > MaxRate {
		return 0, fmt.Errorf("rate %q is %.0f/s, above the maximum of %d/s", s, r, MaxRate)
	}
	return r, nil
}

// FormatRate renders r (per second) the way ParseRate reads it.
func FormatRate(r float64) string {
	return strconv.FormatFloat(r, 'f', -1, 64) + "/s"
}

// bucket is a token bucket: take returns how many creations are due at now.
// It starts with one token so the first creation happens at once, like the
// workshop's loop, and holds at most burst tokens so a stalled scheduler
// does not fire a flood when it wakes.
type bucket struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, start time.Time) *bucket {
	burst := rate // one second's worth
	if burst < 1 {
		burst = 1
	}
	return &bucket{rate: rate, burst: burst, tokens: 1, last: start}
}

func (b *bucket) take(now time.Time) int {
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens += b.rate * dt.Seconds()
		b.last = now
	}
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
	// The epsilon absorbs float error so 5 × 0.2 s at 1/s yields a token.
	n := int(b.tokens + 1e-9)
	b.tokens -= float64(n)
	return n
}

// tick is how often the scheduler wakes: once per creation at low rates,
// every 10 ms at high rates (the bucket releases several per wake).
func tick(rate float64) time.Duration {
	d := time.Duration(float64(time.Second) / rate)
	if d < 10*time.Millisecond {
		d = 10 * time.Millisecond
	}
	return d
}
