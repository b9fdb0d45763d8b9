package netfault

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Rate is a rate in bits per second, written in tc's units: "1mbit",
// "512kbit", "10gbit", "100kbps" (bytes per second), or a bare number of
// bits per second. It marshals to text, so YAML and JSON carry "1mbit".
type Rate uint64

// Size is a byte count written in tc's units: "32kb", "1mb", "1500b", or a
// bare number of bytes.
type Size uint64

var rateUnits = []struct {
	suffix string
	mult   float64
}{
	// Longest suffixes first, so "kbps" is not read as "bps" of "k".
	{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3},
	{"tbps", 8e12}, {"gbps", 8e9}, {"mbps", 8e6}, {"kbps", 8e3},
	{"bit", 1}, {"bps", 8},
}

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"gbit", 1 << 27}, {"mbit", 1 << 17}, {"kbit", 1 << 7},
	{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10},
	{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1},
}

func parseUnits(what, s string, units []struct {
	suffix string
	mult   float64
}) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range units {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = n, u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("%s %q is not a number with a unit such as %s", what, s, units[2].suffix)
	}
	v *= mult
	if v >= math.MaxUint64/2 {
		return 0, fmt.Errorf("%s %q is too large", what, s)
	}
	return uint64(math.Round(v)), nil
}

// ParseRate reads a rate in tc's units.
func ParseRate(s string) (Rate, error) {
	v, err := parseUnits("rate", s, rateUnits)
	return Rate(v), err
}

// ParseSize reads a byte count in tc's units.
func ParseSize(s string) (Size, error) {
	v, err := parseUnits("size", s, sizeUnits)
	return Size(v), err
}

// String writes the rate in the largest unit that keeps it whole.
func (r Rate) String() string {
	for _, u := range []struct {
		s string
		m uint64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if uint64(r) >= u.m && uint64(r)%u.m == 0 {
			return strconv.FormatUint(uint64(r)/u.m, 10) + u.s
		}
	}
	return strconv.FormatUint(uint64(r), 10) + "bit"
}

// String writes the size in the largest unit that keeps it whole.
func (z Size) String() string {
	for _, u := range []struct {
		s string
		m uint64
	}{{"mb", 1 << 20}, {"kb", 1 << 10}} {
		if uint64(z) >= u.m && uint64(z)%u.m == 0 {
			return strconv.FormatUint(uint64(z)/u.m, 10) + u.s
		}
	}
	return strconv.FormatUint(uint64(z), 10) + "b"
}

func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return invalid("%v", err)
	}
	*r = v
	return nil
}

func (z Size) MarshalText() ([]byte, error) { return []byte(z.String()), nil }

func (z *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return invalid("%v", err)
	}
	*z = v
	return nil
}

// ParsePercent reads a percentage: "25%" or "25" (both 25 percent).
func ParsePercent(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a percentage such as 25%%", s)
	}
	return v, nil
}
