package zeebe

import (
	"context"
	"fmt"
	"time"

	"github.com/camunda/zeebe/clients/go/v8/pkg/pb"
	"github.com/camunda/zeebe/clients/go/v8/pkg/zbc"
	"google.golang.org/grpc"
)

// Config says how to reach a gateway.
type Config struct {
	Address  string // host:port, e.g. 127.0.0.1:26500
	Insecure bool   // plaintext gRPC (zbctl --insecure)
	// CACertPath is the gateway's CA for TLS; empty uses the system roots.
	CACertPath string
	// DialOptions are extra gRPC options (tests use a bufconn dialer).
	DialOptions []grpc.DialOption
}

// zbClient implements Client over the deprecated official Go client.
type zbClient struct {
	c zbc.Client
}

// Dial connects to a gateway. Like grpc.Dial it does not wait for the
// connection: the first call reports an unreachable gateway.
func Dial(cfg Config) (Client, error) {
	if cfg.Address == "" {
		return nil, fmt.Errorf("connecting to zeebe gateway: address is empty")
	}
	c, err := zbc.NewClient(&zbc.ClientConfig{
		GatewayAddress:         cfg.Address,
		UsePlaintextConnection: cfg.Insecure,
		CaCertificatePath:      cfg.CACertPath,
		DialOpts:               append([]grpc.DialOption(nil), cfg.DialOptions...),
		UserAgent:              "nfslab",
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to zeebe gateway %s: %w", cfg.Address, err)
	}
	return &zbClient{c: c}, nil
}

func (z *zbClient) Deploy(ctx context.Context, name string, content []byte) (Deployment, error) {
	resp, err := z.c.NewDeployResourceCommand().AddResource(content, name).Send(ctx)
	if err != nil {
		return Deployment{}, fmt.Errorf("deploying %s: %w", name, err)
	}
	d := Deployment{Key: resp.GetKey()}
	for _, dep := range resp.GetDeployments() {
		if p := dep.GetProcess(); p != nil {
			d.Processes = append(d.Processes, Process{
				BPMNProcessID: p.GetBpmnProcessId(),
				Version:       p.GetVersion(),
				Key:           p.GetProcessDefinitionKey(),
				ResourceName:  p.GetResourceName(),
			})
		}
	}
	return d, nil
}

func (z *zbClient) CreateInstance(ctx context.Context, bpmnProcessID, variables string) (Instance, error) {
	cmd := z.c.NewCreateInstanceCommand().BPMNProcessId(bpmnProcessID).LatestVersion()
	if variables != "" {
		var err error
		if cmd, err = cmd.VariablesFromString(variables); err != nil {
			return Instance{}, fmt.Errorf("creating instance of %s: variables: %w", bpmnProcessID, err)
		}
	}
	resp, err := cmd.Send(ctx)
	if err != nil {
		return Instance{}, fmt.Errorf("creating instance of %s: %w", bpmnProcessID, err)
	}
	return Instance{
		Key:           resp.GetProcessInstanceKey(),
		ProcessKey:    resp.GetProcessDefinitionKey(),
		BPMNProcessID: resp.GetBpmnProcessId(),
		Version:       resp.GetVersion(),
	}, nil
}

func (z *zbClient) ActivateJobs(ctx context.Context, req ActivateRequest) ([]Job, error) {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	max := req.MaxJobs
	if max <= 0 {
		max = 32
	}
	jobs, err := z.c.NewActivateJobsCommand().JobType(req.Type).MaxJobsToActivate(max).
		Timeout(timeout).WorkerName(req.Worker).Send(ctx)
	out := make([]Job, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, Job{Key: j.GetKey(), Type: j.GetType(), ProcessInstanceKey: j.GetProcessInstanceKey(), ElementID: j.GetElementId()})
	}
	if err != nil {
		return out, fmt.Errorf("activating %s jobs: %w", req.Type, err)
	}
	return out, nil
}

func (z *zbClient) CompleteJob(ctx context.Context, jobKey int64, variables string) error {
	cmd := z.c.NewCompleteJobCommand().JobKey(jobKey)
	var err error
	if variables != "" {
		c3, verr := cmd.VariablesFromString(variables)
		if verr != nil {
			return fmt.Errorf("completing job %d: variables: %w", jobKey, verr)
		}
		_, err = c3.Send(ctx)
	} else {
		_, err = cmd.Send(ctx)
	}
	if err != nil {
		return fmt.Errorf("completing job %d: %w", jobKey, err)
	}
	return nil
}

func (z *zbClient) Topology(ctx context.Context) (Topology, error) {
	resp, err := z.c.NewTopologyCommand().Send(ctx)
	if err != nil {
		return Topology{}, fmt.Errorf("reading topology: %w", err)
	}
	return topologyFromPB(resp), nil
}

func (z *zbClient) Close() error { return z.c.Close() }

func topologyFromPB(resp *pb.TopologyResponse) Topology {
	t := Topology{
		ClusterSize:       resp.GetClusterSize(),
		PartitionsCount:   resp.GetPartitionsCount(),
		ReplicationFactor: resp.GetReplicationFactor(),
		GatewayVersion:    resp.GetGatewayVersion(),
	}
	for _, b := range resp.GetBrokers() {
		br := Broker{NodeID: b.GetNodeId(), Host: b.GetHost(), Port: b.GetPort(), Version: b.GetVersion()}
		for _, p := range b.GetPartitions() {
			br.Partitions = append(br.Partitions, PartitionInfo{ID: p.GetPartitionId(), Role: p.GetRole().String(), Health: p.GetHealth().String()})
		}
		t.Brokers = append(t.Brokers, br)
	}
	return t
}
