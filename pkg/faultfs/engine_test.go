package faultfs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/duration"
)

func TestValidateNamesBadValue(t *testing.T) {
	ok := Rule{Op: OpRead, Errno: Errno(syscall.EIO)}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid rule rejected: %v", err)
	}
	for _, c := range []struct {
		name string
		r    Rule
		want string
	}{
		{"prob", Rule{Op: OpRead, Errno: 5, Prob: 1.5}, "prob 1.5"},
		{"negprob", Rule{Op: OpRead, Errno: 5, Prob: -0.1}, "prob -0.1"},
		{"op", Rule{Op: "frobnicate", Errno: 5}, `op "frobnicate"`},
		{"nothing", Rule{Op: OpRead}, "neither errno nor latency"},
		{"latency", Rule{Op: OpRead, Latency: duration.Duration(-time.Second)}, "latency -1s"},
		{"count", Rule{Op: OpRead, Errno: 5, Count: -2}, "count -2"},
		{"abs", Rule{Op: OpRead, Errno: 5, PathGlob: "/data/x"}, `path "/data/x"`},
		{"glob", Rule{Op: OpRead, Errno: 5, PathGlob: "a[b"}, `path "a[b"`},
		{"offset-op", Rule{Op: OpFsync, Errno: 5, Offset: 4096}, `not "fsync"`},
		{"offset", Rule{Op: OpRead, Errno: 5, Offset: -1}, "offset -1"},
		{"id", Rule{ID: "a b", Op: OpRead, Errno: 5}, `id "a b"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.r.WithDefaults().Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want ErrInvalid naming %q", err, c.want)
			}
		})
	}
}

func TestErrnoNames(t *testing.T) {
	for _, n := range []string{"EIO", "enospc", "ETIMEDOUT", "EROFS", "ENOENT", "EACCES", "ESTALE"} {
		e, err := ParseErrno(n)
		if err != nil || e == 0 || !strings.EqualFold(e.String(), n) {
			t.Errorf("ParseErrno(%q) = %v, %v", n, e, err)
		}
	}
	if _, err := ParseErrno("EWHATEVER"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "EWHATEVER") {
		t.Errorf("ParseErrno(EWHATEVER) = %v", err)
	}
	r, err := UnmarshalRule([]byte(`{"op":"fsync","errno":"EIO","latency":"250ms","path":"**/*.log"}`))
	if err != nil || r.Errno != Errno(syscall.EIO) || time.Duration(r.Latency) != 250*time.Millisecond {
		t.Fatalf("UnmarshalRule = %+v, %v", r, err)
	}
	b, _ := json.Marshal(r)
	if !strings.Contains(string(b), `"errno":"EIO"`) || !strings.Contains(string(b), `"latency":"250ms"`) {
		t.Errorf("marshal = %s", b)
	}
	if _, err := UnmarshalRule([]byte(`{"op":"read","errno":"EIO","probability":0.5}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown field accepted: %v", err)
	}
}

func TestMatchPath(t *testing.T) {
	for _, c := range []struct {
		glob, rel string
		want      bool
	}{
		{"", "a/b", true},
		{"**", "a/b/c", true},
		{"*.log", "data/raft/journal-1.log", true}, // no slash: base name
		{"*.log", "journal-1.log", true},
		{"*.log", "data/x.txt", false},
		{"data/*.log", "data/j.log", true},
		{"data/*.log", "data/raft/j.log", false},
		{"data/**/*.log", "data/raft/p1/j.log", true},
		{"data/**/*.log", "data/j.log", true},
		{"data/**", "data/raft/j.log", true},
		{"data/**", "other/j.log", false},
		{"**/j.log", "a/b/j.log", true},
	} {
		if got := matchPath(c.glob, c.rel); got != c.want {
			t.Errorf("matchPath(%q, %q) = %v, want %v", c.glob, c.rel, got, c.want)
		}
	}
}

func TestCheckOpPathRange(t *testing.T) {
	e := NewEngine(nil, nil)
	if _, err := e.Set(Rule{Op: OpRead, PathGlob: "*.log", Errno: Errno(syscall.EIO), Offset: 8192, Length: 4096}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		op        Op
		rel       string
		off, size int64
		want      syscall.Errno
	}{
		{OpRead, "j.log", 8192, 4096, syscall.EIO},
		{OpRead, "j.log", 0, 128 << 10, syscall.EIO}, // a readahead window over the range
		{OpRead, "j.log", 0, 8192, 0},
		{OpRead, "j.log", 12288, 4096, 0},
		{OpWrite, "j.log", 8192, 4096, 0},
		{OpRead, "j.txt", 8192, 4096, 0},
	} {
		if got := e.Check(ctx, c.op, c.rel, c.off, c.size); got != c.want {
			t.Errorf("Check(%s %s [%d,+%d)) = %v, want %v", c.op, c.rel, c.off, c.size, got, c.want)
		}
	}
	if s := e.Stats(); s[0].Matched != 2 || s[0].Fired != 2 {
		t.Errorf("stats = %+v, want 2 matched, 2 fired", s)
	}
}

func TestProbabilityAndCount(t *testing.T) {
	seq := []float64{0.1, 0.9, 0.49, 0.5, 0.2}
	i := 0
	e := NewEngine(nil, func() float64 { v := seq[i%len(seq)]; i++; return v })
	if _, err := e.Set(Rule{ID: "p", Op: OpFsync, Errno: Errno(syscall.EIO), Prob: 0.5, Count: 2}); err != nil {
		t.Fatal(err)
	}
	var got []syscall.Errno
	for range 5 {
		got = append(got, e.Check(context.Background(), OpFsync, "x", 0, 0))
	}
	// 0.1 fires, 0.9 no, 0.49 fires (count now 2), then exhausted.
	want := []syscall.Errno{syscall.EIO, 0, syscall.EIO, 0, 0}
	for k := range want {
		if got[k] != want[k] {
			t.Fatalf("results = %v, want %v", got, want)
		}
	}
	s := e.Stats()[0]
	if s.Fired != 2 || s.Matched != 5 || !s.Exhausted {
		t.Errorf("stats = %+v", s)
	}
	if i != 3 {
		t.Errorf("rand called %d times, want 3 (not after exhaustion)", i)
	}
}

func TestFirstFiringRuleWinsAndAnyOp(t *testing.T) {
	e := NewEngine(nil, nil)
	e.Set(Rule{ID: "a", Op: OpOpen, PathGlob: "x", Errno: Errno(syscall.EACCES)})
	e.Set(Rule{ID: "b", Op: OpAny, Errno: Errno(syscall.ENOSPC)})
	if got := e.Check(context.Background(), OpOpen, "x", 0, 0); got != syscall.EACCES {
		t.Errorf("open x = %v, want EACCES", got)
	}
	if got := e.Check(context.Background(), OpWrite, "y", 0, 10); got != syscall.ENOSPC {
		t.Errorf("write y = %v, want ENOSPC", got)
	}
	if err := e.Clear("a"); err != nil {
		t.Fatal(err)
	}
	if err := e.Clear("a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Clear = %v, want ErrNotFound", err)
	}
	if ids := e.ClearAll(); len(ids) != 1 || ids[0] != "b" {
		t.Errorf("ClearAll = %v", ids)
	}
	if got := e.Check(context.Background(), OpOpen, "x", 0, 0); got != 0 {
		t.Errorf("after clear = %v", got)
	}
}

func TestLatencyFakeClockClearAndClose(t *testing.T) {
	fc := clock.NewFake(time.Unix(0, 0))
	e := NewEngine(fc, nil)
	e.Set(Rule{ID: "slow", Op: OpRead, Latency: duration.Duration(time.Second), Errno: Errno(syscall.ETIMEDOUT)})
	res := make(chan syscall.Errno, 1)
	go func() { res <- e.Check(context.Background(), OpRead, "f", 0, 4096) }()
	waitFor(t, func() bool { return fc.Waiters() == 1 })
	if e.Stats()[0].Blocked != 1 {
		t.Errorf("blocked = %d", e.Stats()[0].Blocked)
	}
	fc.Advance(time.Second)
	if got := <-res; got != syscall.ETIMEDOUT {
		t.Errorf("after latency = %v, want ETIMEDOUT", got)
	}

	// Clearing a rule releases waiting operations, which then proceed.
	go func() { res <- e.Check(context.Background(), OpRead, "f", 0, 4096) }()
	waitFor(t, func() bool { return e.Stats()[0].Blocked == 1 })
	e.Clear("slow")
	if got := <-res; got != 0 {
		t.Errorf("after clear = %v, want 0 (proceed)", got)
	}

	// Close (unmount) fails waiting operations with EIO.
	e.Set(Rule{ID: "hang", Op: OpAny, Latency: duration.Duration(time.Hour)})
	go func() { res <- e.Check(context.Background(), OpFsync, "f", 0, 0) }()
	waitFor(t, func() bool { return e.Stats()[0].Blocked == 1 })
	e.Close()
	if got := <-res; got != syscall.EIO {
		t.Errorf("after close = %v, want EIO", got)
	}

	// An interrupted caller gets EINTR.
	e2 := NewEngine(fc, nil)
	e2.Set(Rule{Op: OpAny, Latency: duration.Duration(time.Hour)})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { res <- e2.Check(ctx, OpRead, "f", 0, 1) }()
	waitFor(t, func() bool { return e2.Stats()[0].Blocked == 1 })
	cancel()
	if got := <-res; got != syscall.EINTR {
		t.Errorf("after interrupt = %v, want EINTR", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHandler(t *testing.T) {
	e := NewEngine(nil, nil)
	srv := httptest.NewServer(Handler(e))
	defer srv.Close()
	c := &Client{HTTP: srv.Client(), Base: srv.URL}
	ctx := context.Background()

	r, err := c.Set(ctx, Rule{Op: OpFsync, Errno: Errno(syscall.EIO)})
	if err != nil || r.ID == "" || r.Prob != 1 {
		t.Fatalf("Set = %+v, %v", r, err)
	}
	if got := e.Check(ctx, OpFsync, "a", 0, 0); got != syscall.EIO {
		t.Errorf("rule set over HTTP not applied: %v", got)
	}
	if _, err := c.Set(ctx, Rule{Op: OpRead, Errno: 5, Prob: 2}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "prob 2") {
		t.Errorf("bad rule: %v", err)
	}
	resp, err := http.Post(srv.URL+"/rules", "application/json", strings.NewReader(`{"op":"read","errno":"EBOGUS"}`))
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad errno: status %v, %v", resp.StatusCode, err)
	}
	rules, _ := c.Rules(ctx)
	stats, _ := c.Stats(ctx)
	if len(rules) != 1 || len(stats) != 1 || stats[0].Fired != 1 {
		t.Errorf("rules %+v stats %+v", rules, stats)
	}
	if err := c.Clear(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Clear(nope) = %v", err)
	}
	if err := c.Clear(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.Check(ctx, OpFsync, "a", 0, 0); got != 0 {
		t.Errorf("cleared rule still applies: %v", got)
	}
	c.Set(ctx, Rule{Op: OpRead, Errno: 5})
	if ids, err := c.ClearAll(ctx); err != nil || len(ids) != 1 {
		t.Errorf("ClearAll = %v, %v", ids, err)
	}
	if _, err := c.DropCache(ctx, "*"); err == nil {
		t.Errorf("DropCache on a bare engine should fail")
	}
}

// TestVocabulary: every name faultfs offers parses, and a bad one is
// refused with ErrInvalid naming it.
func TestVocabulary(t *testing.T) {
	for _, n := range OpNames() {
		if o, err := ParseOp(n); err != nil || string(o) != n {
			t.Errorf("ParseOp(%q) = %q, %v", n, o, err)
		}
	}
	if _, err := ParseOp("all"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"all"`) {
		t.Errorf("ParseOp(all) = %v", err)
	}
	for _, n := range ErrnoNames() {
		if e, err := ParseErrno(n); err != nil || e.String() != n {
			t.Errorf("ParseErrno(%q) = %v, %v", n, e, err)
		}
	}
	if !slices.Contains(ErrnoNames(), "EINVAL") || !slices.Contains(ErrnoNames(), "EBADF") {
		t.Errorf("ErrnoNames() = %v lacks EINVAL or EBADF", ErrnoNames())
	}
}
