package detect

import (
	"bytes"
	"sync"
	"testing"

	"github.com/nfslab/nfslab/pkg/detect/loggen"
	"github.com/nfslab/nfslab/pkg/journal"
)

var (
	benchOnce sync.Once
	benchLog  []byte
)

func benchInput(b *testing.B) []byte {
	benchOnce.Do(func() {
		var buf bytes.Buffer
		if err := loggen.Write(&buf, 200_000, 1); err != nil {
			b.Fatal(err)
		}
		benchLog = buf.Bytes()
	})
	return benchLog
}

// BenchmarkBuiltins reports lines/s for all built-ins over a Zeebe-like log.
func BenchmarkBuiltins(b *testing.B) {
	in := benchInput(b)
	lines := bytes.Count(in, []byte{'\n'})
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	hits := 0
	for b.Loop() {
		m, _ := New(Options{}, func(journal.Hit) { hits++ })
		m.Write(in)
		m.Flush()
	}
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func TestGeneratedLogHits(t *testing.T) {
	var buf bytes.Buffer
	if err := loggen.Write(&buf, 200_000, 1); err != nil {
		t.Fatal(err)
	}
	hits, err := ScanAll(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]int{}
	for _, h := range hits {
		by[h.Detector]++
	}
	// Roughly 100k records / 20000 = a handful of failure blocks; every
	// block must be found, and nothing in ordinary traffic may match.
	if len(hits) == 0 || by[DeadlineExceeded] != 0 {
		t.Fatalf("hits by detector %v", by)
	}
	t.Logf("hits by detector: %v", by)
}
