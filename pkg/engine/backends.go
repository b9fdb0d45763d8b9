package engine

import (
	"context"
	"errors"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// ErrUnsupported is returned by a backend asked for something its kind
// cannot do (a faultfs rule on NFS storage, pause on a probe).
var ErrUnsupported = errors.New("not supported by this backend")

// StorageInfo is what Storage.Setup made.
type StorageInfo struct {
	DataDir    string // the target's data directory
	ServerAddr string // the NFS server's address ($nfs-server); empty for non-NFS storage
	Detail     []string
}

// Storage sets up the data directory (an NFS mount, a faultfs mount, a
// plain directory) and tears it down.
type Storage interface {
	Setup(ctx context.Context) (StorageInfo, error)
	// SetFault installs a faultfs rule under id; ErrUnsupported for storage
	// without faultfs.
	SetFault(ctx context.Context, id string, rule scenario.FaultfsRule) error
	// ClearFault removes rule id; not found is done.
	ClearFault(ctx context.Context, id string) error
	// DropCache evicts the data files' pages from the page cache so the
	// next read goes to storage.
	DropCache(ctx context.Context) error
	// Teardown unmounts and stops what Setup started. It must be safe to
	// call after a failed or partial Setup.
	Teardown(ctx context.Context) error
}

// Exit is how the target (or one of its containers) ended.
type Exit struct {
	Time   time.Time
	Name   string // container or process name
	Code   int
	Signal string
}

// Line is one log line of the target.
type Line struct {
	Time   time.Time
	Source string
	Text   string
}

// Event is something the target itself reports (the probe's replay-start
// from its progress lines), with the evidence.
type Event struct {
	Time     time.Time
	Name     string
	Evidence []string
}

// Target is the workload on the storage: the JVM probe or Zeebe brokers.
type Target interface {
	Start(ctx context.Context, dataDir string) error
	// Restart stops the target and starts it again so that it replays its
	// data; between runs while it is stopped (to drop the page cache).
	Restart(ctx context.Context, between func(context.Context) error) error
	// Control pauses, unpauses, stops, kills or restarts container (""
	// means the target's main process or first broker).
	Control(ctx context.Context, action, container string) error
	// Resolve turns $broker:N and $leader:P into an address.
	Resolve(ctx context.Context, ref string) (string, error)
	// Netns returns a named network namespace of container (or $leader:P)
	// for in-container faults.
	Netns(ctx context.Context, container string) (string, error)
	// Exited reports exits the engine did not cause by Restart.
	Exited() <-chan Exit
	// Lines streams the target's log lines (nil when it has none).
	Lines() <-chan Line
	// Events streams the target's own events (nil when it has none).
	Events() <-chan Event
	// Close stops and removes the target; safe after a failed Start.
	Close(ctx context.Context) error
}

// Load produces per-interval samples (Zeebe instances, probe appends).
type Load interface {
	Start(ctx context.Context) (<-chan journal.LoadSample, error)
	Stop(ctx context.Context) error
}

// Detector turns log lines into hits.
type Detector interface {
	Run(ctx context.Context, lines <-chan Line) <-chan journal.Hit
}

// Backends are the side effects of a run.
type Backends struct {
	// Faults applies the run's network faults, each carrying the run's
	// label so that `nfslab heal --all` finds them after a crash.
	Faults   netfault.Faults
	Storage  Storage
	Target   Target
	Load     Load     // nil: no load samples
	Detector Detector // nil: no detector hits
}

// Journal receives the run's records (journal.Writer satisfies it).
type Journal interface {
	Write(journal.Record) error
}
