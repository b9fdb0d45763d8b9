package journal

import (
	"time"
)

// Type says what a Record describes and which payload field it carries.
type Type string

// Record types. The payload field each one carries is given in brackets.
const (
	TypeRunStart      Type = "run-start"      // [Run]
	TypeRunEnd        Type = "run-end"        // [End]
	TypeStepPlanned   Type = "step-planned"   // [Step]
	TypeStepStarted   Type = "step-started"   // [Step]
	TypeStepDone      Type = "step-done"      // [Step]
	TypeFaultApplied  Type = "fault-applied"  // [Fault]
	TypeFaultHealed   Type = "fault-healed"   // [Fault]
	TypeFaultCounters Type = "fault-counters" // [Counters]
	TypeLoadSample    Type = "load-sample"    // [Load]
	TypeDetectorHit   Type = "detector-hit"   // [Hit]
	TypeExpectation   Type = "expectation"    // [Expectation]
	TypeNote          Type = "note"           // [Note]
)

// Known reports whether t is one of the record types this version defines.
func (t Type) Known() bool {
	switch t {
	case TypeRunStart, TypeRunEnd, TypeStepPlanned, TypeStepStarted, TypeStepDone,
		TypeFaultApplied, TypeFaultHealed, TypeFaultCounters, TypeLoadSample,
		TypeDetectorHit, TypeExpectation, TypeNote:
		return true
	}
	return false
}

// Record is one line of the journal. Exactly one payload field is set,
// according to Type (Note may accompany any type as a free-form remark).
type Record struct {
	Time time.Time `json:"time"`
	Type Type      `json:"type"`

	Run         *Run           `json:"run,omitempty"`
	End         *End           `json:"end,omitempty"`
	Step        *Step          `json:"step,omitempty"`
	Fault       *Fault         `json:"fault,omitempty"`
	Counters    *FaultCounters `json:"counters,omitempty"`
	Load        *LoadSample    `json:"load,omitempty"`
	Hit         *Hit           `json:"hit,omitempty"`
	Expectation *Expectation   `json:"expectation,omitempty"`
	Note        string         `json:"note,omitempty"`
}

// Run opens one experiment (one iteration with --repeat or --until-fail).
// Everything up to the matching run-end belongs to it.
type Run struct {
	ID       string `json:"id,omitempty"`       // run directory name or UUID
	Scenario string `json:"scenario"`           // scenario name, e.g. "nfs-full-drop"
	Title    string `json:"title,omitempty"`    // human title for the report
	Summary  string `json:"summary,omitempty"`  // what the experiment does
	Expected string `json:"expected,omitempty"` // the hypothesis, in prose
	// Setup lists the environment as "key: value" lines or commands, e.g.
	// "storage: nfs (qemu guest), mount options soft,timeo=10,retrans=2".
	Setup     []string `json:"setup,omitempty"`
	Iteration int      `json:"iteration,omitempty"` // 1-based with --repeat
	DryRun    bool     `json:"dry_run,omitempty"`
}

// End closes an experiment.
type End struct {
	Passed bool   `json:"passed"` // every expectation held
	Reason string `json:"reason,omitempty"`
	// Interrupted is set when the run stopped early (Ctrl-C, error).
	Interrupted bool `json:"interrupted,omitempty"`
	// RolledBack lists what the rollbacks removed (fault IDs, containers).
	RolledBack []string `json:"rolled_back,omitempty"`
}

// Step is one timeline step. The same Index appears in step-planned,
// step-started and step-done records.
type Step struct {
	Index  int           `json:"index"`
	Name   string        `json:"name,omitempty"`
	Action string        `json:"action"`           // drop, heal, restart, ...
	Detail string        `json:"detail,omitempty"` // e.g. the exact rule
	On     string        `json:"on,omitempty"`     // triggering event, e.g. "replay-start"
	For    time.Duration `json:"for,omitempty"`    // how long the step lasts
	// PlannedAt is when the step should start; ActualAt when it did.
	PlannedAt time.Time `json:"planned_at"`
	ActualAt  time.Time `json:"actual_at,omitzero"`
	// Offset is PlannedAt relative to run start; Lag is ActualAt-PlannedAt.
	Offset time.Duration `json:"offset"`
	Lag    time.Duration `json:"lag,omitempty"`
	Err    string        `json:"error,omitempty"`
}

// Fault describes a fault when it is applied or healed.
type Fault struct {
	ID          string   `json:"id"`
	Kind        string   `json:"kind"` // drop, reject, unreachable, faultfs-eio, ...
	Description string   `json:"description,omitempty"`
	Rules       []string `json:"rules,omitempty"` // exact rules/routes as commands
	// Findings explain a fault that matched no traffic (healed records).
	Findings []string `json:"findings,omitempty"`
}

// FaultCounters is a snapshot of a fault's cumulative counters.
type FaultCounters struct {
	ID      string `json:"id"`
	Kind    string `json:"kind,omitempty"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Counted is false for faults without counters (routes); Packets and
	// Bytes are then meaningless.
	Counted bool `json:"counted"`
}

// Error classes used as keys of LoadSample.Errors (gRPC code names).
const (
	ErrDeadlineExceeded  = "DeadlineExceeded"
	ErrUnavailable       = "Unavailable"
	ErrNotFound          = "NotFound"
	ErrResourceExhausted = "ResourceExhausted"
	ErrOther             = "Other"
)

// LoadSample is what the load (Zeebe client or JVM probe) did in one
// interval ending at T. Counts are per interval, not cumulative.
type LoadSample struct {
	T        time.Time     `json:"t"`
	Interval time.Duration `json:"interval,omitempty"` // usually 1s
	Source   string        `json:"source,omitempty"`   // "zeebe", "probe", ...

	Created   int `json:"created"`
	Completed int `json:"completed"`
	// Skipped counts creations that were due but not sent because too many
	// were still pending (the load generator's own backpressure).
	Skipped int `json:"skipped,omitempty"`
	// Errors counts failed calls by gRPC code name (see Err* constants).
	Errors map[string]int `json:"errors,omitempty"`
	// Latency percentiles of the create-instance round trip in this interval.
	LatencyP50 time.Duration `json:"latency_p50,omitempty"`
	LatencyP95 time.Duration `json:"latency_p95,omitempty"`
	LatencyP99 time.Duration `json:"latency_p99,omitempty"`
	// ByPartition counts created instances per partition (key >> 51).
	ByPartition map[int32]int `json:"by_partition,omitempty"`
	// AppendRate is the JVM journal probe's appends per second.
	AppendRate float64 `json:"append_rate,omitempty"`
	// ForceP50 and ForceP99 are the probe's force() (msync) latency over
	// the probe's last report interval, when one ended in this sample.
	ForceP50 time.Duration `json:"force_p50,omitempty"`
	ForceP99 time.Duration `json:"force_p99,omitempty"`
}

// ErrorTotal is the sum of Errors.
func (s LoadSample) ErrorTotal() int {
	n := 0
	for _, v := range s.Errors {
		n += v
	}
	return n
}

// Hit is one detector event: a matched line plus its grouped context (a
// stack trace, a JVM fatal-error banner).
type Hit struct {
	Detector string    `json:"detector"`
	Time     time.Time `json:"time,omitzero"` // from the log line if parseable, else when seen
	Source   string    `json:"source,omitempty"`
	// Line is the 1-based line number of the first evidence line in Source.
	Line     int      `json:"line,omitempty"`
	Evidence []string `json:"evidence"`
	// Fields holds captured values, e.g. "frame" for jvm-sigbus, "path" for hs-err-file.
	Fields map[string]string `json:"fields,omitempty"`
}

// Expectation is the verdict of one expectation.
type Expectation struct {
	Name   string `json:"name"`
	Held   bool   `json:"held"`
	Detail string `json:"detail,omitempty"`
}
