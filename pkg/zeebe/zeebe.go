package zeebe

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nfslab/nfslab/pkg/journal"
)

// Client is what nfslab needs from a Zeebe gateway.
type Client interface {
	// Deploy deploys one resource (a BPMN file) and returns its processes.
	Deploy(ctx context.Context, name string, content []byte) (Deployment, error)
	// CreateInstance creates an instance of the latest version of
	// bpmnProcessID with the given variables (JSON object, "" for none).
	CreateInstance(ctx context.Context, bpmnProcessID, variables string) (Instance, error)
	// ActivateJobs long-polls for up to req.MaxJobs jobs of req.Type; the
	// poll ends at ctx's deadline (minus a margin, as the client does).
	ActivateJobs(ctx context.Context, req ActivateRequest) ([]Job, error)
	// CompleteJob completes a job with variables (JSON object, "" for none).
	CompleteJob(ctx context.Context, jobKey int64, variables string) error
	// Topology returns the cluster's brokers and partitions.
	Topology(ctx context.Context) (Topology, error)
	Close() error
}

// Deployment is the result of Deploy.
type Deployment struct {
	Key       int64
	Processes []Process
}

// Process is one deployed process definition.
type Process struct {
	BPMNProcessID string
	Version       int32
	Key           int64
	ResourceName  string
}

// Instance is a created process instance.
type Instance struct {
	Key           int64
	ProcessKey    int64
	BPMNProcessID string
	Version       int32
}

// Partition is the partition the instance was created on.
func (i Instance) Partition() int32 { return PartitionOf(i.Key) }

// ActivateRequest asks for jobs of one type.
type ActivateRequest struct {
	Type    string
	Worker  string
	MaxJobs int32
	// Timeout is how long the jobs stay locked to this worker.
	Timeout time.Duration
}

// Job is an activated job.
type Job struct {
	Key                int64
	Type               string
	ProcessInstanceKey int64
	ElementID          string
}

// Topology is the cluster as the gateway sees it.
type Topology struct {
	Brokers           []Broker
	ClusterSize       int32
	PartitionsCount   int32
	ReplicationFactor int32
	GatewayVersion    string
}

// Broker is one broker in the topology.
type Broker struct {
	NodeID     int32
	Host       string
	Port       int32
	Version    string
	Partitions []PartitionInfo
}

// PartitionInfo is one partition's role and health on a broker.
type PartitionInfo struct {
	ID     int32
	Role   string // LEADER, FOLLOWER, INACTIVE
	Health string // HEALTHY, UNHEALTHY, DEAD
}

// Leader returns the node ID leading partition id, or -1.
func (t Topology) Leader(id int32) int32 {
	for _, b := range t.Brokers {
		for _, p := range b.Partitions {
			if p.ID == id && p.Role == "LEADER" {
				return b.NodeID
			}
		}
	}
	return -1
}

// keyPartitionBits is where Zeebe puts the partition ID in a key
// (Protocol#decodePartitionId: the top 13 bits of the 64-bit key).
const keyPartitionBits = 51

// PartitionOf returns the partition a key was created on.
func PartitionOf(key int64) int32 { return int32(key >> keyPartitionBits) }

// ErrorClass maps an error from a Client call to the gRPC code name used as
// key of journal.LoadSample.Errors: DeadlineExceeded, Unavailable, NotFound,
// ResourceExhausted, or Other. A context deadline that expired on our side
// counts as DeadlineExceeded, as the client reports it.
func ErrorClass(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return journal.ErrDeadlineExceeded
	}
	switch status.Code(unwrapStatus(err)) {
	case codes.DeadlineExceeded:
		return journal.ErrDeadlineExceeded
	case codes.Unavailable:
		return journal.ErrUnavailable
	case codes.NotFound:
		return journal.ErrNotFound
	case codes.ResourceExhausted:
		return journal.ErrResourceExhausted
	}
	return journal.ErrOther
}

// ErrorClasses lists every class ErrorClass returns: the error codes a
// scenario's errors expectations can name.
func ErrorClasses() []string {
	return []string{journal.ErrDeadlineExceeded, journal.ErrUnavailable, journal.ErrNotFound,
		journal.ErrResourceExhausted, journal.ErrOther}
}

// unwrapStatus finds a gRPC status error inside wrapped errors (status.Code
// itself only looks one level deep through GRPCStatus).
func unwrapStatus(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := status.FromError(e); ok {
			return e
		}
	}
	return err
}
