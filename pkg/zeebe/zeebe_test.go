package zeebe_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nfslab/nfslab/bpmn"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/zeebe"
	"github.com/nfslab/nfslab/pkg/zeebe/zeebetest"
)

func TestPartitionOf(t *testing.T) {
	// 2251799813685250 is the process key from the workshop's zbctl loop.
	for key, want := range map[int64]int32{2251799813685250: 1, 2<<51 + 7: 2, 3<<51 + 1: 3} {
		if got := zeebe.PartitionOf(key); got != want {
			t.Errorf("PartitionOf(%d) = %d, want %d", key, got, want)
		}
	}
}

func TestErrorClass(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{status.Error(codes.DeadlineExceeded, "x"), journal.ErrDeadlineExceeded},
		{fmt.Errorf("creating: %w", status.Error(codes.Unavailable, "x")), journal.ErrUnavailable},
		{status.Error(codes.NotFound, "x"), journal.ErrNotFound},
		{status.Error(codes.ResourceExhausted, "x"), journal.ErrResourceExhausted},
		{status.Error(codes.Internal, "x"), journal.ErrOther},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), journal.ErrDeadlineExceeded},
		{errors.New("boom"), journal.ErrOther},
		{nil, ""},
	}
	for _, c := range cases {
		if got := zeebe.ErrorClass(c.err); got != c.want {
			t.Errorf("ErrorClass(%v) = %q, want %q", c.err, got, c.want)
		}
		// Scenarios accept exactly ErrorClasses: each class must be listed.
		if c.want != "" && !slices.Contains(zeebe.ErrorClasses(), c.want) {
			t.Errorf("ErrorClasses() = %v lacks %q", zeebe.ErrorClasses(), c.want)
		}
	}
}

func TestClientAgainstFakeGateway(t *testing.T) {
	gw, err := zeebetest.Start(3)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	c, err := zeebe.Dial(zeebe.Config{Address: gw.Addr, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	top, err := c.Topology(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if top.PartitionsCount != 3 || top.Leader(2) != 0 || top.Leader(9) != -1 {
		t.Fatalf("topology %+v", top)
	}
	d, err := c.Deploy(ctx, bpmn.OneTaskName, bpmn.OneTask)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Processes) != 1 || d.Processes[0].BPMNProcessID != bpmn.ProcessID {
		t.Fatalf("deployment %+v", d)
	}
	parts := map[int32]bool{}
	for i := 0; i < 3; i++ {
		inst, err := c.CreateInstance(ctx, bpmn.ProcessID, "")
		if err != nil {
			t.Fatal(err)
		}
		parts[inst.Partition()] = true
	}
	if len(parts) != 3 {
		t.Errorf("instances landed on partitions %v, want 1..3", parts)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	jobs, err := c.ActivateJobs(pctx, zeebe.ActivateRequest{Type: bpmn.JobType, Worker: "t", MaxJobs: 10})
	pcancel()
	if err != nil || len(jobs) != 3 {
		t.Fatalf("activated %d jobs, err %v", len(jobs), err)
	}
	for _, j := range jobs {
		if err := c.CompleteJob(ctx, j.Key, `{"result":"Pong"}`); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CompleteJob(ctx, jobs[0].Key, `{"result":"Pong"}`); zeebe.ErrorClass(err) != journal.ErrNotFound {
		t.Fatalf("completing twice: %v", err)
	}
	gw.Fail(zeebetest.Create, codes.DeadlineExceeded, 1, 0)
	_, err = c.CreateInstance(ctx, bpmn.ProcessID, "")
	if zeebe.ErrorClass(err) != journal.ErrDeadlineExceeded {
		t.Fatalf("injected deadline: %v", err)
	}
	_, err = c.CreateInstance(ctx, "nope", `{"a":1}`)
	if zeebe.ErrorClass(err) != journal.ErrNotFound {
		t.Fatalf("unknown process: %v", err)
	}
}

func TestDialEmptyAddress(t *testing.T) {
	if _, err := zeebe.Dial(zeebe.Config{}); err == nil {
		t.Fatal("empty address accepted")
	}
}
