package netfault

import (
	"math"
	"time"
)

// Bounds of a shaping fault.
const (
	// MaxDelay bounds Delay and Jitter: netem keeps microseconds in 32
	// bits (about 71 minutes); a storage lab needs far less.
	MaxDelay = time.Minute
	// MinRate is the smallest limit: below 8 kbit/s htb's quantum and
	// buffer arithmetic degenerate and NFS RPCs of one page take seconds.
	MinRate Rate = 8000
)

// validateShape checks the fields of delay and limit, and that other
// kinds carry none of them.
func (s Spec) validateShape() error {
	pcts := []struct {
		name string
		v    float64
	}{{"correlation", s.Correlation}, {"loss", s.Loss}, {"duplicate", s.Duplicate}, {"corrupt", s.Corrupt}, {"reorder", s.Reorder}}
	netemSet := s.Delay != 0 || s.Jitter != 0
	for _, p := range pcts {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 100 {
			return invalid("%s %v%% is out of range (want 0-100%%)", p.name, p.v)
		}
		netemSet = netemSet || p.v != 0
	}
	if s.Kind != KindDelay && netemSet {
		return invalid("delay, jitter, correlation, loss, duplicate, corrupt and reorder apply only to delay faults, not %s", s.Kind)
	}
	if s.Kind != KindLimit && (s.Rate != 0 || s.Burst != 0) {
		return invalid("rate and burst apply only to limit faults, not %s", s.Kind)
	}
	switch s.Kind {
	case KindDelay:
		if s.Delay < 0 || s.Jitter < 0 {
			return invalid("delay %v and jitter %v must not be negative", s.Delay, s.Jitter)
		}
		if s.Delay > MaxDelay || s.Jitter > MaxDelay {
			return invalid("delay %v or jitter %v exceeds the maximum of %v", s.Delay, s.Jitter, MaxDelay)
		}
		if s.Delay%time.Microsecond != 0 || s.Jitter%time.Microsecond != 0 {
			return invalid("delay %v and jitter %v must be whole microseconds (netem's unit)", s.Delay, s.Jitter)
		}
		if s.Jitter > s.Delay {
			return invalid("jitter %v exceeds the delay %v (netem would reorder most packets)", s.Jitter, s.Delay)
		}
		if s.Correlation != 0 && s.Jitter == 0 {
			return invalid("correlation %v%% needs --jitter (it correlates the delay's variation)", s.Correlation)
		}
		if s.Reorder != 0 && s.Delay == 0 {
			return invalid("reorder %v%% needs --delay (reordered packets skip the delay)", s.Reorder)
		}
		if s.Delay == 0 && s.Loss == 0 && s.Duplicate == 0 && s.Corrupt == 0 {
			return invalid("a delay fault needs --delay (or loss, duplicate, corrupt): it would change nothing")
		}
	case KindLimit:
		if s.Rate == 0 {
			return invalid("a limit fault needs --rate such as 1mbit")
		}
		if s.Rate < MinRate {
			return invalid("rate %v is below the minimum of %v", s.Rate, MinRate)
		}
		if s.Burst > 64<<20 {
			return invalid("burst %v exceeds 64mb", s.Burst)
		}
	}
	return nil
}
