package load_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/load"
	"github.com/nfslab/nfslab/pkg/zeebe"
	"github.com/nfslab/nfslab/pkg/zeebe/zeebetest"
)

func startGateway(t *testing.T, partitions int32) (*zeebetest.Gateway, zeebe.Client) {
	t.Helper()
	gw, err := zeebetest.Start(partitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	c, err := zeebe.Dial(zeebe.Config{Address: gw.Addr, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return gw, c
}

// countingClient counts create calls that have returned.
type countingClient struct {
	zeebe.Client
	mu    sync.Mutex
	calls int
}

func (c *countingClient) CreateInstance(ctx context.Context, id, vars string) (zeebe.Instance, error) {
	inst, err := c.Client.CreateInstance(ctx, id, vars)
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return inst, err
}

func (c *countingClient) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type sampleSink struct {
	mu      sync.Mutex
	samples []journal.LoadSample
}

func (s *sampleSink) add(ls journal.LoadSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, ls)
}

func (s *sampleSink) sum() (created, completed int, errs map[string]int, parts map[int32]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs, parts = map[string]int{}, map[int32]int{}
	for _, ls := range s.samples {
		created += ls.Created
		completed += ls.Completed
		for k, v := range ls.Errors {
			errs[k] += v
		}
		for k, v := range ls.ByPartition {
			parts[k] += v
		}
	}
	return
}

// TestRunFakeClock drives the token bucket with a fake clock: 2/s for 5 s
// is exactly 10 creations; two hang-and-fail with DEADLINE_EXCEEDED, and
// creations landing on partition 3 are rejected NOT_FOUND (seed 001: the
// deployment has not reached it).
func TestRunFakeClock(t *testing.T) {
	gw, zc := startGateway(t, 3)
	cc := &countingClient{Client: zc}
	gw.Fail(zeebetest.Create, codes.DeadlineExceeded, 2, 0)
	gw.NotDeployedOn(3)
	clk := clock.NewFake(time.Date(2025, 6, 12, 9, 0, 0, 0, time.UTC))
	sink := &sampleSink{}
	type result struct {
		s   load.Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := load.Run(context.Background(), cc, load.Config{
			Rate: 2, Duration: 5 * time.Second, Clock: clk, OnSample: sink.add, PollTimeout: 2 * time.Second,
		})
		done <- result{s, err}
	}()
	for step := 1; step <= 10; step++ {
		waitFor(t, "scheduler and sampler waiting", func() bool { return clk.Waiters() >= 2 })
		waitFor(t, "creation returned", func() bool { return cc.n() >= step })
		clk.Advance(500 * time.Millisecond)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	s := r.s
	// 10 attempts: 2 injected deadlines, then round robin p1,p2,p3(NF),p1,p2,p3(NF),p1,p2.
	if cc.n() != 10 {
		t.Errorf("attempts = %d, want 10", cc.n())
	}
	if s.Created != 6 || s.ByPartition[1] != 3 || s.ByPartition[2] != 3 || s.ByPartition[3] != 0 {
		t.Errorf("created %d by partition %v, want 6 on partitions 1 and 2", s.Created, s.ByPartition)
	}
	if s.Errors[journal.ErrDeadlineExceeded] != 2 || s.Errors[journal.ErrNotFound] != 2 {
		t.Errorf("errors %v, want 2 DeadlineExceeded and 2 NotFound", s.Errors)
	}
	if s.Deployment.Key == 0 || s.Topology.PartitionsCount != 3 {
		t.Errorf("deployment %+v topology %+v", s.Deployment, s.Topology)
	}
	if !s.End.Equal(s.Start.Add(5 * time.Second)) {
		t.Errorf("ran %s on the fake clock, want 5s", s.End.Sub(s.Start))
	}
	created, completed, errs, parts := sink.sum()
	if created != s.Created || completed != s.Completed || errs[journal.ErrNotFound] != 2 || parts[1] != 3 {
		t.Errorf("samples sum to created=%d completed=%d errs=%v parts=%v; summary %+v", created, completed, errs, parts, s)
	}
	if len(sink.samples) < 5 {
		t.Errorf("%d samples, want 5 (one per second)", len(sink.samples))
	}
	for i, ls := range sink.samples[:5] {
		if ls.Interval != time.Second || ls.Source != "zeebe" {
			t.Errorf("sample %d: %+v", i, ls)
		}
	}
	created2, completed2, _, rejected := gw.Snapshot()
	if created2[1]+created2[2] != 6 || completed2 != s.Completed || rejected[codes.NotFound] != 2 {
		t.Errorf("gateway saw created=%v completed=%d rejected=%v", created2, completed2, rejected)
	}
}

// TestRunRealClock runs at 50/s for one second with two workers and checks
// the rate, that jobs are completed with Pong, and the latency percentiles.
func TestRunRealClock(t *testing.T) {
	gw, zc := startGateway(t, 2)
	sink := &sampleSink{}
	s, err := load.Run(context.Background(), zc, load.Config{
		Rate: 50, Duration: time.Second, Workers: 2, OnSample: sink.add, PollTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Created < 25 || s.Created > 52 { // generous: the CI machine is shared
		t.Errorf("created %d in 1 s at 50/s", s.Created)
	}
	if s.Completed < s.Created/2 {
		t.Errorf("completed %d of %d", s.Completed, s.Created)
	}
	if len(s.Errors) != 0 {
		t.Errorf("errors %v", s.Errors)
	}
	_, completed, _, _ := gw.Snapshot()
	if completed != s.Completed {
		t.Errorf("gateway completed %d, load counted %d", completed, s.Completed)
	}
	var withLatency bool
	for _, ls := range sink.samples {
		if ls.LatencyP50 > 0 && ls.LatencyP50 <= ls.LatencyP95 && ls.LatencyP95 <= ls.LatencyP99 {
			withLatency = true
		}
	}
	if !withLatency {
		t.Errorf("no sample with ordered latency percentiles: %+v", sink.samples)
	}
}

// TestRunActivationDeadline: a worker whose polls fail with
// DEADLINE_EXCEEDED (as zbctl's did in the workshop) counts the errors and
// recovers.
func TestRunActivationDeadline(t *testing.T) {
	gw, zc := startGateway(t, 1)
	gw.Fail(zeebetest.Activate, codes.DeadlineExceeded, 2, 0)
	gw.Fail(zeebetest.Complete, codes.Unavailable, 1, 0)
	s, err := load.Run(context.Background(), zc, load.Config{Rate: 20, Duration: 1500 * time.Millisecond, PollTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Errors[journal.ErrDeadlineExceeded] != 2 || s.Errors[journal.ErrUnavailable] != 1 {
		t.Errorf("errors %v, want 2 DeadlineExceeded, 1 Unavailable", s.Errors)
	}
	if s.Completed == 0 {
		t.Error("worker did not recover")
	}
}

// TestRunHungGateway: a create call that hangs past RequestTimeout counts
// as DeadlineExceeded on the client side, like a broker stuck on NFS.
func TestRunHungGateway(t *testing.T) {
	gw, zc := startGateway(t, 1)
	gw.Fail(zeebetest.Create, codes.Unavailable, 1, time.Minute) // hangs; the client gives up first
	s, err := load.Run(context.Background(), zc, load.Config{Rate: 1, Duration: 300 * time.Millisecond, RequestTimeout: 200 * time.Millisecond, NoWorkers: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Errors[journal.ErrDeadlineExceeded] != 1 || s.Created != 0 {
		t.Errorf("summary %+v", s)
	}
}

func TestRunDeployFails(t *testing.T) {
	gw, zc := startGateway(t, 1)
	gw.Fail(zeebetest.Deploy, codes.Unavailable, 1, 0)
	_, err := load.Run(context.Background(), zc, load.Config{Duration: time.Second})
	if err == nil || zeebe.ErrorClass(err) != journal.ErrUnavailable {
		t.Fatalf("err = %v", err)
	}
}

func TestRunBadConfig(t *testing.T) {
	_, err := load.Run(context.Background(), nil, load.Config{Rate: 1e6})
	if !errors.Is(err, load.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
}
