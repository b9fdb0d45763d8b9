package journal

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 12, 9, 2, 0, 0, time.UTC)

func sample() []Record {
	return []Record{
		{Time: t0, Type: TypeRunStart, Run: &Run{Scenario: "nfs-full-drop", Title: "Full drop", Setup: []string{"storage: faultfs"}}},
		{Time: t0.Add(time.Second), Type: TypeStepStarted, Step: &Step{Index: 0, Action: "drop", PlannedAt: t0.Add(time.Second), ActualAt: t0.Add(time.Second + 3*time.Millisecond), Offset: time.Second, Lag: 3 * time.Millisecond}},
		{Time: t0.Add(time.Second), Type: TypeFaultApplied, Fault: &Fault{ID: "f1", Kind: "drop", Rules: []string{"iptables -I NFSLAB-OUTPUT 1 -p tcp --dport 2049 -j DROP"}}},
		{Time: t0.Add(2 * time.Second), Type: TypeFaultCounters, Counters: &FaultCounters{ID: "f1", Kind: "drop", Packets: 35, Bytes: 2064 << 10, Counted: true}},
		{Time: t0.Add(2 * time.Second), Type: TypeLoadSample, Load: &LoadSample{T: t0.Add(2 * time.Second), Interval: time.Second, Created: 3, Completed: 2,
			Errors: map[string]int{ErrDeadlineExceeded: 1}, LatencyP50: 5 * time.Millisecond, ByPartition: map[int32]int{1: 2, 3: 1}}},
		{Time: t0.Add(3 * time.Second), Type: TypeDetectorHit, Hit: &Hit{Detector: "msync-ioexception", Time: t0.Add(3 * time.Second), Evidence: []string{"java.io.IOException: x", "\tat y"}, Fields: map[string]string{"a": "b"}}},
		{Time: t0.Add(4 * time.Second), Type: TypeExpectation, Expectation: &Expectation{Name: "msync fires", Held: true}},
		{Time: t0.Add(5 * time.Second), Type: TypeNote, Note: "hello <world> & co"},
		{Time: t0.Add(6 * time.Second), Type: TypeRunEnd, End: &End{Passed: true}},
	}
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	in := sample()
	for _, r := range in {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "\n"); n != len(in) {
		t.Fatalf("got %d lines, want %d", n, len(in))
	}
	if !strings.Contains(buf.String(), "hello <world> & co") {
		t.Errorf("HTML escaping should be off: %s", buf.String())
	}
	out, err := ReadAll(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip differs:\n in=%+v\nout=%+v", in, out)
	}
	for _, r := range out {
		if !r.Type.Known() {
			t.Errorf("type %q not known", r.Type)
		}
	}
}

func TestWireNames(t *testing.T) {
	// The format is a contract: these field names must not change.
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, r := range sample() {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{`"type":"run-start"`, `"scenario":"nfs-full-drop"`, `"planned_at":`, `"actual_at":`,
		`"offset":1000000000`, `"lag":3000000`, `"packets":35`, `"latency_p50":5000000`, `"by_partition":{"1":2,"3":1}`,
		`"errors":{"DeadlineExceeded":1}`, `"detector":"msync-ioexception"`, `"evidence":[`, `"held":true`, `"passed":true`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("journal lacks %s:\n%s", want, buf.String())
		}
	}
}

func TestWriteRejectsZeroTime(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	if err := w.Write(Record{Type: TypeNote}); err == nil {
		t.Fatal("zero time accepted")
	}
	if err := w.Write(Record{Time: t0}); err == nil {
		t.Fatal("empty type accepted")
	}
}

func TestReaderTruncatedTailAndUnknown(t *testing.T) {
	in := `{"time":"2025-06-12T09:02:00Z","type":"note","note":"a"}` + "\n\n" +
		`{"time":"2025-06-12T09:02:01Z","type":"future-type","future":{"x":1}}` + "\n" +
		`{"time":"2025-06-12T09:02:02Z","type":"no`
	recs, err := ReadAll(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].Type.Known() {
		t.Fatalf("got %+v", recs)
	}
}

func TestReaderBadLine(t *testing.T) {
	in := "{\"time\":\"2025-06-12T09:02:00Z\",\"type\":\"note\"}\nnot json\n"
	_, err := ReadAll(strings.NewReader(in))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want line 2", err)
	}
}

func TestConcurrentWritesDoNotInterleave(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if err := w.Write(Record{Time: t0, Type: TypeNote, Note: strings.Repeat("x", 500)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 800 {
		t.Fatalf("got %d records", len(recs))
	}
}

func TestErrorTotal(t *testing.T) {
	s := LoadSample{Errors: map[string]int{ErrNotFound: 2, ErrOther: 1}}
	if s.ErrorTotal() != 3 {
		t.Fatal(s.ErrorTotal())
	}
}
