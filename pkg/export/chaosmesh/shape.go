package chaosmesh

import (
	"fmt"
	"strconv"

	"github.com/nfslab/nfslab/pkg/netfault"
)

// The scenario actions of netfault's shaping kinds: netem delay (with
// loss, duplicate, corrupt, reorder) and an htb rate limit.
const (
	actionDelay = "delay"
	actionLimit = "limit"
)

// shapeFields are the YAML names of netfault.Spec's shaping parameters,
// which shapeSpec maps.
var shapeFields = []string{"delay", "jitter", "correlation", "loss", "duplicate", "corrupt", "reorder", "rate", "burst"}

// defaultQueue is the tbf queue of a bandwidth limit in bytes: what a
// default pfifo of 1000 full-size packets holds, as behind nfslab's htb
// class.
const defaultQueue = 1000 * 1514

// shapeSpec fills spec (selector and target set) for a delay or limit
// fault and returns what it is, and the parts Chaos Mesh cannot take.
func shapeSpec(spec *NetworkChaosSpec, action string, p netfault.Spec) (what string, partial [][2]string) {
	pct := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	if action == actionLimit {
		spec.Action = BandwidthAction
		buffer := p.Burst
		if buffer == 0 {
			// htb's own default: what the rate sends in a 100 Hz tick, at
			// least one full-size packet.
			buffer = max(netfault.Size(p.Rate/8/100), 1514)
		}
		spec.Bandwidth = &BandwidthSpec{Rate: rateText(uint64(p.Rate)), Limit: defaultQueue, Buffer: uint32(min(uint64(buffer), 1<<32-1))}
		partial = append(partial, [2]string{"nfslab's queue (1000 packets)", fmt.Sprintf("Chaos Mesh's tbf takes a queue length in bytes: written as limit %d, what 1000 full-size packets take", defaultQueue)})
		return "NetworkChaos bandwidth " + spec.Bandwidth.Rate, partial
	}
	d := &DelaySpec{Latency: p.Delay.String()}
	if p.Jitter != 0 {
		d.Jitter = p.Jitter.String()
	}
	if p.Correlation != 0 {
		d.Correlation = pct(p.Correlation)
	}
	if p.Reorder != 0 {
		d.Reorder = &ReorderSpec{Reorder: pct(p.Reorder)}
	}
	spec.Action, spec.Delay = DelayAction, d
	delay := d.Latency
	if d.Jitter != "" {
		delay += " ± " + d.Jitter
	}
	what = "NetworkChaos delay " + delay
	if p.Loss != 0 || p.Duplicate != 0 || p.Corrupt != 0 {
		// delay takes only the delay; netem takes them together.
		spec.Action = NetemAction
		what = "NetworkChaos netem, delay " + delay
		if p.Loss != 0 {
			spec.Loss = &LossSpec{Loss: pct(p.Loss)}
			what += ", loss " + pct(p.Loss) + "%"
		}
		if p.Duplicate != 0 {
			spec.Duplicate = &DuplicateSpec{Duplicate: pct(p.Duplicate)}
			what += ", duplicate " + pct(p.Duplicate) + "%"
		}
		if p.Corrupt != 0 {
			spec.Corrupt = &CorruptSpec{Corrupt: pct(p.Corrupt)}
			what += ", corrupt " + pct(p.Corrupt) + "%"
		}
	}
	return what, nil
}

// rateText writes bits per second in tc's units, as Chaos Mesh reads them.
func rateText(bps uint64) string {
	for _, u := range []struct {
		s string
		m uint64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if bps >= u.m && bps%u.m == 0 {
			return strconv.FormatUint(bps/u.m, 10) + u.s
		}
	}
	return strconv.FormatUint(bps, 10) + "bit"
}
