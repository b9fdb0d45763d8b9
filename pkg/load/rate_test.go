package load

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	good := map[string]float64{"0.2/s": 0.2, "5/s": 5, "300/m": 5, "1/5s": 0.2, "12/h": 12.0 / 3600, "10": 10, " 2 / s ": 2, "1/500ms": 2}
	for in, want := range good {
		got, err := ParseRate(in)
		if err != nil || abs(got-want) > 1e-12 {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0/s", "-1/s", "x/s", "1/day", "1/-5s", "5000/s", "NaN"} {
		if _, err := ParseRate(in); err == nil || !strings.Contains(err.Error(), "rate") {
			t.Errorf("ParseRate(%q) err = %v, want an error naming the rate", in, err)
		}
	}
	if FormatRate(0.2) != "0.2/s" {
		t.Error(FormatRate(0.2))
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newBucket(0.2, t0)
	if n := b.take(t0); n != 1 {
		t.Fatalf("first take = %d, want 1 (create at once)", n)
	}
	total := 0
	for i := 1; i <= 50; i++ { // 50 s at one per 5 s
		total += b.take(t0.Add(time.Duration(i) * time.Second))
	}
	if total != 10 {
		t.Fatalf("50 s at 0.2/s gave %d, want 10", total)
	}
	// High rate: 10 ms ticks at 500/s release 5 per tick.
	b = newBucket(500, t0)
	total = b.take(t0)
	for i := 1; i <= 100; i++ {
		total += b.take(t0.Add(time.Duration(i) * 10 * time.Millisecond))
	}
	if total != 501 {
		t.Fatalf("1 s at 500/s gave %d, want 501", total)
	}
	// A stall does not release more than one second's burst.
	b = newBucket(10, t0)
	b.take(t0)
	if n := b.take(t0.Add(time.Minute)); n != 10 {
		t.Fatalf("after a stall take = %d, want burst 10", n)
	}
	if tick(0.2) != 5*time.Second || tick(1000) != 10*time.Millisecond {
		t.Fatal(tick(0.2), tick(1000))
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{{Rate: -1}, {Rate: 5000}, {Duration: -time.Second}, {Workers: 1000}, {SampleInterval: time.Millisecond}} {
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	c := Config{}.WithDefaults()
	if err := c.Validate(); err != nil || c.Rate != 0.2 || c.Workers != 1 || c.Result != `{"result":"Pong"}` {
		t.Fatalf("defaults %+v: %v", c, err)
	}
	if c := (Config{NoWorkers: true}).WithDefaults(); c.Workers != 0 {
		t.Fatal("NoWorkers ignored")
	}
}
