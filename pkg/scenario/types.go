package scenario

import (
	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

// Scenario is one experiment: set up storage, start a target on it, put
// load on it, run a timeline of faults, judge the expectations, roll back.
type Scenario struct {
	Metadata Metadata `yaml:"metadata" json:"metadata"`
	// Duration is how long the timeline runs at most. The run ends earlier
	// when every expectation has a verdict.
	Duration     duration.Duration `yaml:"duration" json:"duration"`
	Storage      Storage           `yaml:"storage" json:"storage"`
	Target       Target            `yaml:"target" json:"target"`
	Load         Load              `yaml:"load,omitempty" json:"load,omitempty"`
	Detectors    []Detector        `yaml:"detectors,omitempty" json:"detectors,omitempty"`
	Timeline     []Step            `yaml:"timeline" json:"timeline"`
	Expectations []Expectation     `yaml:"expectations" json:"expectations"`
	// Rollbacks are extra actions that run after the run on every exit
	// path, after the engine healed what it created itself.
	Rollbacks []Step `yaml:"rollbacks,omitempty" json:"rollbacks,omitempty"`
}

// Metadata names the scenario and cites where it comes from.
type Metadata struct {
	// Name is the file's identity: lower-case letters, digits and dashes.
	Name  string `yaml:"name" json:"name"`
	Title string `yaml:"title,omitempty" json:"title,omitempty"`
	// Description says what the scenario proves and cites the seed section
	// it reproduces.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Seed is the source (chaos day post and section).
	Seed string `yaml:"seed,omitempty" json:"seed,omitempty"`
	// Expected is the hypothesis in prose, the report's "Expected".
	Expected string `yaml:"expected,omitempty" json:"expected,omitempty"`
}

// Storage kinds.
const (
	StorageNFS     = "nfs"
	StorageFaultfs = "faultfs"
	StorageLocal   = "local" // a plain directory; for targets that need no storage faults
)

// NFS server kinds.
const (
	ServerNetns     = "netns"     // knfsd in a network namespace of nfslab's, over a veth pair
	ServerExternal  = "external"  // a server the user runs elsewhere
	ServerContainer = "container" // the seed's containerized server, published through a DNAT
)

// Storage is where the target's data directory lives.
type Storage struct {
	Kind    string      `yaml:"kind" json:"kind"`
	Server  *NFSServer  `yaml:"server,omitempty" json:"server,omitempty"`
	Options string      `yaml:"options,omitempty" json:"options,omitempty"` // mount options in the seed's form: proto=tcp,port=2049,soft,timeo=10
	Subdir  string      `yaml:"subdir,omitempty" json:"subdir,omitempty"`   // directory inside the mount used as data dir (the seed's srv/nfs)
	Faultfs *FaultfsDir `yaml:"faultfs,omitempty" json:"faultfs,omitempty"`
}

// NFSServer is the NFS server the mount talks to.
type NFSServer struct {
	Kind    string `yaml:"kind" json:"kind"`
	Address string `yaml:"address,omitempty" json:"address,omitempty"` // required for external; netns/container pick their own when empty
	Export  string `yaml:"export,omitempty" json:"export,omitempty"`   // default "/"
	// Image is the server image for kind container (the seed's
	// ghcr.io/normal-computing/nfs-server:latest).
	Image string `yaml:"image,omitempty" json:"image,omitempty"`
	// Publish is the host address:port podman publishes a container
	// server on (podman -p ADDRESS:PORT:2049, a DNAT; default
	// 127.0.0.1:2049); the mount then uses it, as in the seed. Kind
	// container only.
	Publish string `yaml:"publish,omitempty" json:"publish,omitempty"`
	// ExportSize bounds a netns server's export (a filesystem of this
	// size) so that server-fill can fill it: writes then get ENOSPC.
	ExportSize Size `yaml:"export_size,omitempty" json:"export_size,omitempty"`
	// ExportFS is that filesystem: tmpfs (default) or ext4, on a loop
	// device through nfslab's dm device, which server-eio needs.
	ExportFS string `yaml:"export_fs,omitempty" json:"export_fs,omitempty"`
	// LocalIO is what a netns server does about NFS LOCALIO (a client on
	// the same kernel bypassing the network): empty refuses to start while
	// it is on (nfslab's default), "disable" turns it off before the mount
	// (--disable-localio), "allow" keeps it on, for scenarios that show
	// the bypass (they need a kernel with LOCALIO: vm run --kernel localio).
	LocalIO string `yaml:"localio,omitempty" json:"localio,omitempty"`
}

// NFS LOCALIO choices of a netns server.
const (
	LocalIOAllow   = "allow"
	LocalIODisable = "disable"
)

// FaultfsDir configures the FUSE fault filesystem.
type FaultfsDir struct {
	// Backing is the real directory under the FUSE mount; empty means a
	// fresh directory inside the run directory.
	Backing string `yaml:"backing,omitempty" json:"backing,omitempty"`
}

// Target kinds.
const (
	TargetProbe = "probe"
	TargetZeebe = "zeebe"
)

// Target is what runs on the storage.
type Target struct {
	Kind  string       `yaml:"kind" json:"kind"`
	Probe *ProbeTarget `yaml:"probe,omitempty" json:"probe,omitempty"`
	Zeebe *ZeebeTarget `yaml:"zeebe,omitempty" json:"zeebe,omitempty"`
}

// ProbeTarget is the JVM journal probe: mapped segments, force() per batch,
// CRC32C replay on start.
type ProbeTarget struct {
	SegmentSize Size `yaml:"segment_size,omitempty" json:"segment_size,omitempty"` // default 16MB, as the seed's LOGSEGMENTSIZE
	RecordSize  Size `yaml:"record_size,omitempty" json:"record_size,omitempty"`
	Batch       int  `yaml:"batch,omitempty" json:"batch,omitempty"` // records per force()
	// Rate is records appended per second; 0 means as fast as it can.
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
	// Replay makes the probe replay existing segments on start.
	Replay bool `yaml:"replay,omitempty" json:"replay,omitempty"`
	// Prefill is how much journal to write before the timeline starts so
	// that a restart has something to replay.
	Prefill Size `yaml:"prefill,omitempty" json:"prefill,omitempty"`
	// Heap is the JVM -Xmx, e.g. 256m.
	Heap string `yaml:"heap,omitempty" json:"heap,omitempty"`
	// Container runs the probe in a podman container of nfslab's own
	// probe image (this machine's JRE, no registry) with the data
	// directory bind-mounted, as the workshop ran Zeebe: the exit status
	// is podman's and the hs_err report is copied out of the container.
	Container bool `yaml:"container,omitempty" json:"container,omitempty"`
}

// ZeebeTarget is one or more Zeebe brokers in podman.
type ZeebeTarget struct {
	Image   string            `yaml:"image,omitempty" json:"image,omitempty"`
	Brokers int               `yaml:"brokers,omitempty" json:"brokers,omitempty"` // default 1
	Env     map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// Partitions and Replication apply to a cluster (brokers > 1).
	Partitions  int `yaml:"partitions,omitempty" json:"partitions,omitempty"`
	Replication int `yaml:"replication,omitempty" json:"replication,omitempty"`
	// GatewayPort and MonitoringPort published on the host.
	GatewayPort    int `yaml:"gateway_port,omitempty" json:"gateway_port,omitempty"`
	MonitoringPort int `yaml:"monitoring_port,omitempty" json:"monitoring_port,omitempty"`
}

// Load kinds.
const (
	LoadAuto  = "auto"  // the target's own: probe appends, or zeebe instances
	LoadZeebe = "zeebe" // process instances through the Zeebe client
	LoadProbe = "probe" // the probe's append rate
	LoadNone  = "none"
)

// Load is the work that makes faults visible.
type Load struct {
	Kind string `yaml:"kind,omitempty" json:"kind,omitempty"`
	// Rate is process instances created per second (zeebe); the seed's
	// loop is one per 5 s: 0.2.
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
	// Worker runs a job worker completing benchmark-task jobs.
	Worker *bool `yaml:"worker,omitempty" json:"worker,omitempty"`
	// Deployments deploys this many versions of the process first (seed
	// 001 deployed 1000+).
	Deployments int `yaml:"deployments,omitempty" json:"deployments,omitempty"`
	// DeployEvery deploys a new version of the process this often and
	// creates instances of the latest version, so that deployment
	// distribution is exercised during a fault (seed 001).
	DeployEvery duration.Duration `yaml:"deploy_every,omitempty" json:"deploy_every,omitempty"`
}

// Detector is a custom log detector by regular expression.
type Detector struct {
	Name    string `yaml:"name" json:"name"`
	Pattern string `yaml:"pattern" json:"pattern"`
}

// Actions a step can do.
const (
	ActionDrop          = "drop"
	ActionReject        = "reject"
	ActionUnreachable   = "unreachable"
	ActionDelay         = "delay"
	ActionLimit         = "limit"
	ActionHeal          = "heal"
	ActionPause         = "pause"
	ActionUnpause       = "unpause"
	ActionStop          = "stop"
	ActionKill          = "kill"
	ActionRestart       = "restart"
	ActionFaultfsSet    = "faultfs-set"
	ActionFaultfsClear  = "faultfs-clear"
	ActionRestartTarget = "restart-target"
	ActionWait          = "wait"
	// Faults of nfslab's own NFS server (storage.server.kind netns).
	ActionServerRestart  = "server-restart"        // knfsd stopped, started after for (at once without)
	ActionServerUnexport = "server-unexport"       // export removed, added again after for
	ActionServerExpire   = "server-expire-clients" // knfsd forgets the clients' state
	ActionServerFill     = "server-fill"           // the size-bounded export filled (ENOSPC), emptied after for
	ActionServerEIO      = "server-eio"            // the ext4 export's sectors (eio:) fail with EIO, mended after for
)

// Actions lists every action, in documentation order.
var Actions = []string{ActionDrop, ActionReject, ActionUnreachable, ActionDelay, ActionLimit, ActionHeal,
	ActionPause, ActionUnpause, ActionStop, ActionKill, ActionRestart,
	ActionFaultfsSet, ActionFaultfsClear, ActionRestartTarget, ActionWait,
	ActionServerRestart, ActionServerUnexport, ActionServerExpire, ActionServerFill, ActionServerEIO}

// Step is one thing the timeline does. It starts at an offset from the
// start of the timeline (At) or when an event happens (On, then Delay), and
// a fault step lasts For (then the engine heals it).
type Step struct {
	ID    string             `yaml:"id" json:"id"`
	At    *duration.Duration `yaml:"at,omitempty" json:"at,omitempty"`
	On    string             `yaml:"on,omitempty" json:"on,omitempty"`
	Delay duration.Duration  `yaml:"delay,omitempty" json:"delay,omitempty"`
	For   duration.Duration  `yaml:"for,omitempty" json:"for,omitempty"`
	// Action is one of Actions.
	Action string `yaml:"action" json:"action"`
	// Fault selects the traffic of drop, reject, unreachable, delay and
	// limit (and says how delay and limit shape it).
	Fault *Fault `yaml:"fault,omitempty" json:"fault,omitempty"`
	// Ref is the step whose fault heal or faultfs-clear removes, or "all".
	Ref string `yaml:"ref,omitempty" json:"ref,omitempty"`
	// Container is the container pause..restart acts on; empty means the
	// target (its first broker).
	Container string `yaml:"container,omitempty" json:"container,omitempty"`
	// Faultfs is the rule faultfs-set installs.
	Faultfs *FaultfsRule `yaml:"faultfs,omitempty" json:"faultfs,omitempty"`
	// EIO is the part of the export server-eio fails: path (a file,
	// relative to the export) and/or blocks (512-byte sectors FIRST-LAST
	// or FIRST-: of that file, else of the export device).
	EIO *nfsserver.FaultTarget `yaml:"eio,omitempty" json:"eio,omitempty"`
	// DropCache drops the page cache of the data files before
	// restart-target, so a replay reads cold pages from storage.
	DropCache bool   `yaml:"drop_cache,omitempty" json:"drop_cache,omitempty"`
	Note      string `yaml:"note,omitempty" json:"note,omitempty"`
}

// Fault is a step's network fault: the netfault.Spec it applies, decoded
// from YAML with Spec's own field names (dst, port, proto, dir, prob,
// route_type, match_original, netns). The step gives the kind (its action),
// the lifetime and the label. Dst may reference the lab: $nfs-server (the
// storage server's address), $broker:N (broker N's address), $leader:P (the
// address of partition P's leader), resolved when the step runs.
type Fault struct {
	netfault.Spec `yaml:",inline"`
	// In is a container (or $leader:P) in whose network namespace the fault
	// is made (seed 001 ran ip route inside the broker's pod); Netns names
	// a namespace directly.
	In string `yaml:"in,omitempty" json:"in,omitempty"`
	// portGiven records whether the YAML gave a port: a rule fault without
	// one gets netfault.DefaultPort, "port: 0" means any port.
	portGiven bool
}

// UnmarshalYAML decodes the fault (strictly, with the caller's decoder) and
// notes whether it names a port.
func (f *Fault) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Fault
	var p plain
	if err := unmarshal(&p); err != nil {
		return err
	}
	var keys map[string]any
	if err := unmarshal(&keys); err != nil {
		return err
	}
	p.portGiven = keys["port"] != nil // "port: ~" is no port, as before
	*f = Fault(p)
	return nil
}

// FaultfsRule is a storage fault of the FUSE fault filesystem.
type FaultfsRule struct {
	// Ops are the operations hit, in faultfs's names (faultfs.OpNames):
	// open, read, write, fsync, flush, getattr, ... ("any" for every one).
	Ops []string `yaml:"ops" json:"ops"`
	// Path is a glob relative to the data directory; empty means every file.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Errno is an errno(3) name as faultfs.ParseErrno reads it (EIO,
	// ENOSPC, ETIMEDOUT, EINVAL, ...); empty: no error (latency only).
	Errno string `yaml:"errno,omitempty" json:"errno,omitempty"`
	// Prob is the probability an operation faults; 0 means always.
	Prob    float64           `yaml:"prob,omitempty" json:"prob,omitempty"`
	Latency duration.Duration `yaml:"latency,omitempty" json:"latency,omitempty"`
	// Offset and Length limit read and write rules to a byte range of the
	// file (Length 0: to the end), e.g. the second half of a segment.
	Offset Size `yaml:"offset,omitempty" json:"offset,omitempty"`
	Length Size `yaml:"length,omitempty" json:"length,omitempty"`
}

// Expectation kinds.
const (
	ExpectDetectorFires  = "detector-fires"
	ExpectDetectorAbsent = "detector-absent"
	ExpectRateBelow      = "rate-below"
	ExpectRateAbove      = "rate-above"
	ExpectErrorsAppear   = "errors-appear"
	ExpectErrorsAbsent   = "errors-absent"
	ExpectRecovery       = "recovery"
	ExpectFaultHits      = "fault-hits"
	ExpectFaultNoHits    = "fault-no-hits"
	ExpectExitCode       = "exit-code"
)

// ExpectationKinds lists every kind.
var ExpectationKinds = []string{ExpectDetectorFires, ExpectDetectorAbsent,
	ExpectRateBelow, ExpectRateAbove, ExpectErrorsAppear, ExpectErrorsAbsent,
	ExpectRecovery, ExpectFaultHits, ExpectFaultNoHits, ExpectExitCode}

// Recovery signals.
const (
	RecoverByRate      = "rate"      // the load rate back above Fraction of baseline
	RecoverByDetector  = "detector"  // a detector (e.g. partition-healthy) fires
	RecoverByAppending = "appending" // the probe appends again
)

// Expectation is one claim the verdict checks. Windows are relative to the
// start of step After (or the timeline's start): [start+Settle,
// start+Within]. For recovery, After names the heal step (or a step with
// For, whose end is the heal).
type Expectation struct {
	Name     string            `yaml:"name,omitempty" json:"name,omitempty"`
	Kind     string            `yaml:"kind" json:"kind"`
	Detector string            `yaml:"detector,omitempty" json:"detector,omitempty"`
	After    string            `yaml:"after,omitempty" json:"after,omitempty"`
	Settle   duration.Duration `yaml:"settle,omitempty" json:"settle,omitempty"`
	Within   duration.Duration `yaml:"within,omitempty" json:"within,omitempty"`
	// Metric is the load rate: appends (probe), created, completed (zeebe),
	// or empty for the load's primary rate.
	Metric   string  `yaml:"metric,omitempty" json:"metric,omitempty"`
	Fraction float64 `yaml:"fraction,omitempty" json:"fraction,omitempty"`
	// Baseline is the steady-state window before the fault, default 20s
	// before step BaselineBefore (default: the step After, or for recovery
	// the first fault step).
	Baseline       duration.Duration `yaml:"baseline,omitempty" json:"baseline,omitempty"`
	BaselineBefore string            `yaml:"baseline_before,omitempty" json:"baseline_before,omitempty"`
	// Code is a gRPC code (DeadlineExceeded, Unavailable, NotFound,
	// ResourceExhausted, ...) or "any".
	Code string `yaml:"code,omitempty" json:"code,omitempty"`
	By   string `yaml:"by,omitempty" json:"by,omitempty"` // recovery: rate, detector, appending
	// Step is the fault step of fault-hits and fault-no-hits.
	Step string `yaml:"step,omitempty" json:"step,omitempty"`
	// Cause is the finding expected with fault-no-hits: nat-before-filter,
	// no-connection, userspace-proxy, localio, earlier-accept, sport-mistake.
	Cause    string `yaml:"cause,omitempty" json:"cause,omitempty"`
	ExitCode *int   `yaml:"exit_code,omitempty" json:"exit_code,omitempty"`
	// Targets limits the expectation to these target kinds (e.g. raft-inactive
	// only when the target is zeebe).
	Targets []string `yaml:"targets,omitempty" json:"targets,omitempty"`
}
