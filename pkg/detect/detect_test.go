package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/journal"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scan(t *testing.T, in []byte, dets ...Detector) []journal.Hit {
	t.Helper()
	hits, err := ScanAll(bytes.NewReader(in), Options{Detectors: dets, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func names(hits []journal.Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Detector)
	}
	return out
}

func ts(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05.000", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSeedMsync(t *testing.T) {
	in := readTestdata(t, "seed000-msync.log")
	hits := scan(t, in)
	if !reflect.DeepEqual(names(hits), []string{MsyncIOException}) {
		t.Fatalf("hits %v, want one msync-ioexception (the Caused by line is part of it)", names(hits))
	}
	h := hits[0]
	lines := strings.Split(strings.TrimRight(string(in), "\n"), "\n")
	if !reflect.DeepEqual(h.Evidence, lines) {
		t.Errorf("evidence is not the whole record with its stack trace:\n%s", strings.Join(h.Evidence, "\n"))
	}
	if !h.Time.Equal(ts("2025-06-12 09:02:00.819")) || h.Line != 1 || h.Source != "test" {
		t.Errorf("time %v line %d source %q", h.Time, h.Line, h.Source)
	}
	if h.Fields["error"] != "Input/output error" || h.Fields["partition"] != "1" {
		t.Errorf("fields %v", h.Fields)
	}
}

func TestSeedInactiveAndDisk(t *testing.T) {
	hits := scan(t, readTestdata(t, "seed000-raft-inactive.log"))
	if !reflect.DeepEqual(names(hits), []string{RaftInactive}) || !hits[0].Time.IsZero() {
		t.Fatalf("hits %+v", hits)
	}
	hits = scan(t, readTestdata(t, "seed000-out-of-disk.log"))
	if !reflect.DeepEqual(names(hits), []string{OutOfDisk, StreamProcessorPaused}) {
		t.Fatalf("hits %v", names(hits))
	}
	if len(hits[0].Evidence) != 2 || !strings.HasPrefix(hits[0].Evidence[0], "[2025-06-12 09:02:00.795]") {
		t.Errorf("out-of-disk evidence lacks its header: %q", hits[0].Evidence)
	}
	if hits[0].Fields["available"] != "0" || hits[0].Fields["needed"] != "2147483648" {
		t.Errorf("fields %v", hits[0].Fields)
	}
	if !hits[1].Time.Equal(ts("2025-06-12 09:02:00.796")) || hits[1].Fields["partition"] != "1" {
		t.Errorf("paused: %+v", hits[1])
	}
}

func TestSeedReplaySigbus(t *testing.T) {
	hits := scan(t, readTestdata(t, "seed000-replay-sigbus.log"))
	want := []string{ReplayStart, PartitionHealthy, PartitionHealthy, HsErrFile, JVMSigbus}
	if !reflect.DeepEqual(names(hits), want) {
		t.Fatalf("hits %v, want %v", names(hits), want)
	}
	r := hits[0]
	if r.Fields["snapshot_position"] != "611" || r.Fields["replay_mode"] != "PROCESSING" || r.Fields["partition"] != "1" ||
		!r.Time.Equal(ts("2025-06-12 09:25:00.543")) {
		t.Errorf("replay %+v", r)
	}
	if hits[2].Fields["partition"] != "1" {
		t.Errorf("Partition-1 healthy: %v", hits[2].Fields)
	}
	if hits[3].Fields["path"] != "/usr/local/zeebe/hs_err_pid2.log" {
		t.Errorf("hs_err %+v", hits[3])
	}
	s := hits[4]
	if s.Fields["frame"] != "v  ~StubRoutines::updateBytesCRC32C 0x00007f89ec4601a5" || s.Fields["pid"] != "2" ||
		s.Fields["pc"] != "0x00007f89ec4601a5" || s.Fields["hs_err"] != "/usr/local/zeebe/hs_err_pid2.log" {
		t.Errorf("sigbus fields %v", s.Fields)
	}
	if s.Evidence[0] != "#" || !strings.Contains(s.Evidence[1], "A fatal error has been detected") ||
		s.Evidence[len(s.Evidence)-1] != "# /usr/local/zeebe/hs_err_pid2.log" || len(s.Evidence) != 14 {
		t.Errorf("banner evidence (%d lines):\n%s", len(s.Evidence), strings.Join(s.Evidence, "\n"))
	}
	// The banner has no timestamp; the hit carries the last log time seen.
	if !s.Time.Equal(ts("2025-06-12 09:25:00.562")) {
		t.Errorf("sigbus time %v", s.Time)
	}
}

func TestSeedClientDeadline(t *testing.T) {
	hits := scan(t, readTestdata(t, "seed000-client-deadline.log"))
	if len(hits) != 5 {
		t.Fatalf("got %d deadline hits, want 5: %v", len(hits), names(hits))
	}
	for _, h := range hits {
		if h.Detector != DeadlineExceeded || len(h.Evidence) != 1 {
			t.Errorf("hit %+v", h)
		}
	}
	if want := time.Date(2025, 6, 12, 16, 14, 3, 0, time.UTC); !hits[0].Time.Equal(want) {
		t.Errorf("time %v", hits[0].Time)
	}
}

func TestNegatives(t *testing.T) {
	in := string(readTestdata(t, "seed000-iptables-rule.log")) + strings.Join([]string{
		"[2025-06-12 09:25:00.545] [zb-actors-1] [{actor-name=ZeebePartition-1}] INFO ",
		"\tio.camunda.zeebe.broker.system - Transition to LEADER on term 4 - transitioning CommandApiService",
		"INFO io.atomix.raft.impl.RaftContext - Transitioning to FOLLOWER",
		"msync with parameter MS_ASYNC failed",
		"Disk space usage is below threshold. Resuming stream processor.",
		"SIGBUS (0x7) mentioned outside a banner",
		"code = Unavailable desc = connection refused",
		"transitioning to inactive", // case matters
		"",
	}, "\n")
	if hits := scan(t, []byte(in)); len(hits) != 0 {
		t.Fatalf("false positives: %+v", hits)
	}
}

// TestChunked feeds the seed excerpts in every chunk size from 1 to 17
// bytes: lines split across reads give the same hits.
func TestChunked(t *testing.T) {
	in := append(readTestdata(t, "seed000-msync.log"), readTestdata(t, "seed000-replay-sigbus.log")...)
	want := scan(t, in)
	for size := 1; size <= 17; size++ {
		var got []journal.Hit
		m, err := New(Options{Source: "test"}, func(h journal.Hit) { got = append(got, h) })
		if err != nil {
			t.Fatal(err)
		}
		for p := in; len(p) > 0; {
			n := min(size, len(p))
			m.Write(p[:n])
			p = p[n:]
		}
		m.Flush()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("chunk size %d: got %v, want %v", size, names(got), names(want))
		}
	}
}

func TestANSIAndCRLF(t *testing.T) {
	plain := readTestdata(t, "seed000-out-of-disk.log")
	var colored bytes.Buffer
	for _, l := range strings.Split(strings.TrimRight(string(plain), "\n"), "\n") {
		colored.WriteString("\x1b[33m" + strings.Replace(l, "Out of", "Out\x1b[1m of\x1b[0m", 1) + "\x1b[0m\x1b]0;title\x07\r\n")
	}
	got, want := scan(t, colored.Bytes()), scan(t, plain)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ANSI/CRLF changed hits:\n got %+v\nwant %+v", got, want)
	}
}

func TestJSONFormat(t *testing.T) {
	msync := readTestdata(t, "seed000-msync.log")
	lines := strings.Split(strings.TrimRight(string(msync), "\n"), "\n")
	trace := strings.Join(lines[2:], "\n") // exception line and stack
	rec := func(m map[string]any) string {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	in := strings.Join([]string{
		rec(map[string]any{"severity": "INFO", "logger": "io.camunda.zeebe.broker.system", "message": "Transition to LEADER on term 4 completed", "timestampSeconds": 1749718920, "timestampNanos": 0}),
		rec(map[string]any{"severity": "ERROR", "logger": "io.atomix.raft.impl.RaftContext", "message": "An uncaught exception occurred, transition to inactive role",
			"exception": trace, "timestampSeconds": 1749718920, "timestampNanos": 819000000, "context": map[string]any{"partitionId": "1"}}),
		rec(map[string]any{"level": "INFO", "logger": "io.atomix.raft.impl.RaftContext", "message": "Transitioning to INACTIVE", "timestamp": "2025-06-12T09:02:00.900Z"}),
		rec(map[string]any{"level": "WARN", "loggerName": "x", "message": "boom", "thrown": map[string]any{}, "stack_trace": "java.lang.Exception: DEADLINE_EXCEEDED: deadline exceeded\n\tat a.b(C.java:1)", "timestamp": 1749718921000}),
		`{"not json": `, // broken JSON is matched as text: no hit
	}, "\n")
	hits := scan(t, []byte(in))
	if want := []string{MsyncIOException, RaftInactive, DeadlineExceeded}; !reflect.DeepEqual(names(hits), want) {
		t.Fatalf("hits %v, want %v", names(hits), want)
	}
	m := hits[0]
	if !m.Time.Equal(ts("2025-06-12 09:02:00.819")) || len(m.Evidence) != len(lines)-2 || m.Fields["error"] != "Input/output error" {
		t.Errorf("json msync: time %v, %d evidence lines, fields %v", m.Time, len(m.Evidence), m.Fields)
	}
	if !hits[1].Time.Equal(ts("2025-06-12 09:02:00.900")) || hits[1].Evidence[0] != "INFO io.atomix.raft.impl.RaftContext - Transitioning to INACTIVE" {
		t.Errorf("json inactive %+v", hits[1])
	}
	if !hits[2].Time.Equal(time.UnixMilli(1749718921000).UTC()) || len(hits[2].Evidence) != 2 {
		t.Errorf("json deadline %+v", hits[2])
	}
}

func TestLongLine(t *testing.T) {
	long := "Out of disk space " + strings.Repeat("x", 3<<20)
	in := long + "\nINFO Transitioning to INACTIVE\n"
	var hits []journal.Hit
	m, _ := New(Options{MaxLineBytes: 1 << 20}, func(h journal.Hit) { hits = append(hits, h) })
	for p := []byte(in); len(p) > 0; { // in 64 KiB reads
		n := min(64<<10, len(p))
		m.Write(p[:n])
		p = p[n:]
	}
	m.Flush()
	if !reflect.DeepEqual(names(hits), []string{OutOfDisk, RaftInactive}) || len(hits[0].Evidence[0]) != 1<<20 || m.Lines() != 2 {
		t.Fatalf("hits %v, first evidence %d bytes, %d lines", names(hits), len(hits[0].Evidence[0]), m.Lines())
	}
	// Scan over an io.Reader too.
	hits2, err := ScanAll(strings.NewReader(in), Options{})
	if err != nil || len(hits2) != 2 {
		t.Fatalf("ScanAll: %v %v", names(hits2), err)
	}
}

func TestCustom(t *testing.T) {
	d, err := ParseCustom(`leader:next1=Transition to LEADER on term (?P<term>\d+) completed`)
	if err != nil {
		t.Fatal(err)
	}
	if d.Literals[0] != "Transition to LEADER on term " || d.Group != GroupNext || d.Next != 1 {
		t.Fatalf("%+v", d)
	}
	hits := scan(t, readTestdata(t, "seed000-replay-sigbus.log"), d)
	if len(hits) != 1 || hits[0].Fields["term"] != "4" || len(hits[0].Evidence) != 3 {
		t.Fatalf("custom hits %+v", hits)
	}
	// Without a usable literal the expression runs on every line.
	d2, err := ParseCustom(`any-error=(?i)error`)
	if err != nil || len(d2.Literals) != 0 {
		t.Fatalf("%+v %v", d2, err)
	}
	if hits := scan(t, readTestdata(t, "seed000-client-deadline.log"), d2); len(hits) != 5 {
		t.Fatalf("case-insensitive custom: %d hits", len(hits))
	}
	st, err := ParseCustom(`uncaught:stack=An uncaught exception`)
	if err != nil {
		t.Fatal(err)
	}
	if hits := scan(t, readTestdata(t, "seed000-msync.log"), st); len(hits) != 1 || len(hits[0].Evidence) != 2 {
		// header + logger line; the exception line is not a stack line
		t.Fatalf("stack custom: %+v", hits)
	}
	for _, bad := range []string{"NoKebab=x", "x", "a=", "a:weird=x", "a:nextx=x", "a:next0=x", "a=(", "a b=x"} {
		if _, err := ParseCustom(bad); err == nil {
			t.Errorf("ParseCustom(%q) accepted", bad)
		}
	}
	if _, err := New(Options{Detectors: []Detector{d, d}}, nil); err == nil {
		t.Error("duplicate names accepted")
	}
}

func TestRequiredLiteral(t *testing.T) {
	for expr, want := range map[string]string{
		`foo`:                 "foo",
		`a+bcd(ef)+`:          "bcd",
		`(?i)foo`:             "",
		`foo|barbaz`:          "",
		`x(?:long literal)?y`: "x",
		`^\s*#\s+SIGBUS`:      "SIGBUS",
		`(hello){2}`:          "hello",
	} {
		if got := requiredLiteral(expr); got != want {
			t.Errorf("requiredLiteral(%q) = %q, want %q", expr, got, want)
		}
	}
}

func TestNamesStable(t *testing.T) {
	want := []string{"msync-ioexception", "raft-inactive", "out-of-disk", "stream-processor-paused", "jvm-sigbus",
		"hs-err-file", "replay-start", "partition-healthy", "no-message-handler", "deadline-exceeded"}
	if !reflect.DeepEqual(Names(), want) {
		t.Fatalf("Names() = %v", Names())
	}
	hits := scan(t, []byte("[2025-06-12 09:02:01.000] [x] [{}] ERROR \n\tio.camunda.zeebe.broker.transport - no message handler for command-api-1\n"))
	if len(hits) != 1 || hits[0].Fields["subject"] != "command-api-1" || len(hits[0].Evidence) != 2 {
		t.Fatalf("no-message-handler: %+v", hits)
	}
}

// TestFollowIdleFlush: a stack trace at the end of a burst is reported
// after the idle time, without waiting for another line.
func TestFollowIdleFlush(t *testing.T) {
	pr, pw := io.Pipe()
	hits := make(chan journal.Hit, 4)
	clk := clock.NewFake(time.Unix(0, 0))
	m, _ := New(Options{Clock: clk}, func(h journal.Hit) { hits <- h })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, pr, m, clk, time.Second) }()
	if _, err := pw.Write(readTestdata(t, "seed000-msync.log")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for clk.Waiters() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Follow never armed its idle timer")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case h := <-hits:
		t.Fatalf("hit before idle: %v", h.Detector)
	default:
	}
	clk.Advance(time.Second)
	select {
	case h := <-hits:
		if h.Detector != MsyncIOException || len(h.Evidence) != 30 {
			t.Fatalf("hit %+v", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no hit after idle")
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLiteralIn(t *testing.T) {
	for _, c := range []struct {
		lit, line string
		want      bool
	}{
		{"SIGBUS (0x7)", "#  SIGBUS (0x7) at pc", true},
		{"SIGBUS (0x7)", "SIGBUS (0x8) (0x7)", false},
		{"SIGBUS (0x7)", "(0x7)", false},
		{"Out of disk space", "Out of disk space", true},
		{"Out of disk space", "xOut of disk spac", false},
		{"a_b", "__a_b", true},
		{"a_b", "a_", false},
	} {
		m, err := New(Options{Detectors: []Detector{{Name: "x", Literals: []string{c.lit}}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.candidates([]byte(c.line)) != 0; got != c.want {
			t.Errorf("%q in %q = %v (anchor %q)", c.lit, c.line, got, newLiteral(c.lit, 0).anchor)
		}
	}
}
