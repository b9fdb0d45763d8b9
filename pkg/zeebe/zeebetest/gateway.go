package zeebetest

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"sync"
	"time"

	"github.com/camunda/zeebe/clients/go/v8/pkg/pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Method names for Fail.
const (
	Deploy       = "DeployResource"
	Create       = "CreateProcessInstance"
	Activate     = "ActivateJobs"
	Complete     = "CompleteJob"
	TopologyCall = "Topology"
)

// Gateway is a fake gateway. Its counters are safe to read while it serves.
type Gateway struct {
	pb.UnimplementedGatewayServer

	Addr string // 127.0.0.1:port

	srv *grpc.Server
	lis net.Listener

	mu         sync.Mutex
	partitions int32
	next       int32           // round-robin partition for creations
	seq        map[int32]int64 // per-partition key counter
	processes  map[string]int64
	failures   map[string][]failure
	notFoundOn map[int32]bool
	pending    []*pb.ActivatedJob
	active     map[int64]bool
	jobReady   chan struct{} // closed and replaced when a job is queued

	// Counters of successful calls.
	Created   map[int32]int // by partition
	Completed int
	Activated int
	Deployed  int
	Rejected  map[codes.Code]int
}

type failure struct {
	code  codes.Code
	delay time.Duration
}

// Start serves a gateway with the given number of partitions (at least 1)
// on 127.0.0.1 and returns it; Close stops it.
func Start(partitions int32) (*Gateway, error) {
	if partitions < 1 {
		partitions = 1
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for fake gateway: %w", err)
	}
	g := &Gateway{
		Addr:       lis.Addr().String(),
		lis:        lis,
		srv:        grpc.NewServer(),
		partitions: partitions,
		seq:        map[int32]int64{},
		processes:  map[string]int64{},
		failures:   map[string][]failure{},
		notFoundOn: map[int32]bool{},
		active:     map[int64]bool{},
		jobReady:   make(chan struct{}),
		Created:    map[int32]int{},
		Rejected:   map[codes.Code]int{},
	}
	pb.RegisterGatewayServer(g.srv, g)
	go g.srv.Serve(lis) //nolint:errcheck // Serve returns when Close stops it
	return g, nil
}

// Close stops the server, ending open streams.
func (g *Gateway) Close() { g.srv.Stop() }

// Fail makes the next n calls of method fail with code. With delay > 0 the
// call first blocks for delay (or until the caller's deadline), as a broker
// that hangs on a dead NFS mount does.
func (g *Gateway) Fail(method string, code codes.Code, n int, delay time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := 0; i < n; i++ {
		g.failures[method] = append(g.failures[method], failure{code: code, delay: delay})
	}
}

// NotDeployedOn makes creations that land on the given partitions fail with
// NOT_FOUND, as when a deployment has not been distributed there (seed 001).
// Call with no partitions to clear.
func (g *Gateway) NotDeployedOn(partitions ...int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notFoundOn = map[int32]bool{}
	for _, p := range partitions {
		g.notFoundOn[p] = true
	}
}

// Snapshot returns copies of the counters.
func (g *Gateway) Snapshot() (created map[int32]int, completed, activated int, rejected map[codes.Code]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	created = map[int32]int{}
	for k, v := range g.Created {
		created[k] = v
	}
	rejected = map[codes.Code]int{}
	for k, v := range g.Rejected {
		rejected[k] = v
	}
	return created, g.Completed, g.Activated, rejected
}

func (g *Gateway) injected(ctx context.Context, method string) error {
	g.mu.Lock()
	q := g.failures[method]
	if len(q) == 0 {
		g.mu.Unlock()
		return nil
	}
	f := q[0]
	g.failures[method] = q[1:]
	g.Rejected[f.code]++
	g.mu.Unlock()
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return status.Errorf(f.code, "injected %s failure of %s", f.code, method)
}

// key encodes a key on partition p like Zeebe's Protocol.encode.
func (g *Gateway) key(p int32) int64 {
	g.seq[p]++
	return int64(p)<<51 + g.seq[p]
}

var processIDRe = regexp.MustCompile(`<(?:bpmn:)?process\s[^>]*\bid="([^"]+)"`)

func (g *Gateway) DeployResource(ctx context.Context, req *pb.DeployResourceRequest) (*pb.DeployResourceResponse, error) {
	if err := g.injected(ctx, Deploy); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	resp := &pb.DeployResourceResponse{Key: g.key(1)}
	for _, r := range req.GetResources() {
		m := processIDRe.FindSubmatch(r.GetContent())
		if m == nil {
			return nil, status.Errorf(codes.InvalidArgument, "resource %s has no process", r.GetName())
		}
		id := string(m[1])
		key := g.key(1)
		g.processes[id] = key
		resp.Deployments = append(resp.Deployments, &pb.Deployment{Metadata: &pb.Deployment_Process{Process: &pb.ProcessMetadata{
			BpmnProcessId: id, Version: 1, ProcessDefinitionKey: key, ResourceName: r.GetName(),
		}}})
	}
	g.Deployed++
	return resp, nil
}

func (g *Gateway) CreateProcessInstance(ctx context.Context, req *pb.CreateProcessInstanceRequest) (*pb.CreateProcessInstanceResponse, error) {
	if err := g.injected(ctx, Create); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.next%g.partitions + 1
	g.next++
	pkey, ok := g.processes[req.GetBpmnProcessId()]
	if !ok || g.notFoundOn[p] {
		g.Rejected[codes.NotFound]++
		return nil, status.Errorf(codes.NotFound,
			"Command 'CREATE' rejected with code 'NOT_FOUND': Expected to find process definition with process ID '%s', but none found", req.GetBpmnProcessId())
	}
	ikey := g.key(p)
	g.Created[p]++
	g.pending = append(g.pending, &pb.ActivatedJob{
		Key: g.key(p), Type: "benchmark-task", ProcessInstanceKey: ikey, BpmnProcessId: req.GetBpmnProcessId(),
		ProcessDefinitionKey: pkey, ElementId: "task", Variables: "{}", CustomHeaders: "{}",
	})
	close(g.jobReady)
	g.jobReady = make(chan struct{})
	return &pb.CreateProcessInstanceResponse{ProcessDefinitionKey: pkey, BpmnProcessId: req.GetBpmnProcessId(), Version: 1, ProcessInstanceKey: ikey}, nil
}

func (g *Gateway) ActivateJobs(req *pb.ActivateJobsRequest, stream pb.Gateway_ActivateJobsServer) error {
	ctx := stream.Context()
	if err := g.injected(ctx, Activate); err != nil {
		return err
	}
	wait := time.Duration(req.GetRequestTimeout()) * time.Millisecond
	if wait <= 0 {
		wait = 10 * time.Second
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		var jobs []*pb.ActivatedJob
		keep := g.pending[:0]
		for _, j := range g.pending {
			if j.GetType() == req.GetType() && int32(len(jobs)) < req.GetMaxJobsToActivate() {
				j.Worker = req.GetWorker()
				jobs = append(jobs, j)
				g.active[j.GetKey()] = true
				continue
			}
			keep = append(keep, j)
		}
		g.pending = keep
		g.Activated += len(jobs)
		ready := g.jobReady
		g.mu.Unlock()
		if len(jobs) > 0 {
			return stream.Send(&pb.ActivateJobsResponse{Jobs: jobs})
		}
		select {
		case <-ready:
		case <-deadline.C:
			return nil // long poll ended empty
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

func (g *Gateway) CompleteJob(ctx context.Context, req *pb.CompleteJobRequest) (*pb.CompleteJobResponse, error) {
	if err := g.injected(ctx, Complete); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.active[req.GetJobKey()] {
		g.Rejected[codes.NotFound]++
		return nil, status.Errorf(codes.NotFound, "Command 'COMPLETE' rejected with code 'NOT_FOUND': Expected to find job with key '%d', but no such job was found", req.GetJobKey())
	}
	if req.GetVariables() != `{"result":"Pong"}` {
		return nil, status.Errorf(codes.InvalidArgument, "unexpected variables %q", req.GetVariables())
	}
	delete(g.active, req.GetJobKey())
	g.Completed++
	return &pb.CompleteJobResponse{}, nil
}

func (g *Gateway) Topology(ctx context.Context, _ *pb.TopologyRequest) (*pb.TopologyResponse, error) {
	if err := g.injected(ctx, TopologyCall); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	b := &pb.BrokerInfo{NodeId: 0, Host: "127.0.0.1", Port: 26501, Version: "8.7.5"}
	for p := int32(1); p <= g.partitions; p++ {
		b.Partitions = append(b.Partitions, &pb.Partition{PartitionId: p, Role: pb.Partition_LEADER, Health: pb.Partition_HEALTHY})
	}
	return &pb.TopologyResponse{Brokers: []*pb.BrokerInfo{b}, ClusterSize: 1, PartitionsCount: g.partitions, ReplicationFactor: 1, GatewayVersion: "8.7.5"}, nil
}
