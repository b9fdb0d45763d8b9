package daemonapi

import (
	"encoding/json"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Event types published by the fault service. Other services use their own
// types (EventFaultfsChanged).
const (
	EventFaultApplied        = "fault-applied"
	EventFaultHealed         = "fault-healed"
	EventFaultExpired        = "fault-expired"
	EventFaultMatchedNothing = "fault-matched-nothing"
	EventFaultFirstHit       = "fault-first-hit"
	EventSweepRemoved        = "sweep-removed"
	EventError               = "error"
	// EventFaultfsChanged is published when a request through the faultfs
	// proxy changed a faultfs (a rule set or cleared).
	EventFaultfsChanged = "faultfs-changed"
)

// Event is one line of the /v1/events stream (newline-delimited JSON).
type Event struct {
	// Seq increases by one per published event; the publisher sets it.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	// ID and Netns name the fault the event is about, if any.
	ID    string          `json:"id,omitempty"`
	Netns string          `json:"netns,omitempty"`
	Fault *netfault.Fault `json:"fault,omitempty"`
	// IDs lists the faults removed by a sweep or heal-all.
	IDs []string `json:"ids,omitempty"`
	// Packets and FirstHit describe a fault-first-hit: the packet count when
	// it was seen and how long after apply.
	Packets  uint64        `json:"packets,omitempty"`
	FirstHit time.Duration `json:"first_hit,omitempty"`
	// Findings explain a fault-matched-nothing.
	Findings []netfault.Finding `json:"findings,omitempty"`
	Message  string             `json:"message,omitempty"`
	// Data carries service-specific details for events of other services.
	Data json.RawMessage `json:"data,omitempty"`
}

// HealAllResponse is the body of DELETE /v1/faults.
type HealAllResponse struct {
	IDs []string `json:"ids"`
}

// Health is the body of GET /v1/health.
type Health struct {
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	Namespaces []string  `json:"namespaces"`
	Faults     int       `json:"faults"`
}

// ErrorResponse is the body of every error reply. Code is "invalid" (400),
// "forbidden" (403), "not_found" (404), "internal" (500) or "unavailable"
// (502, 503).
type ErrorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// NFSServerFaultPath is the endpoint that switches a fault of nfslab's
// netns NFS server (POST).
const NFSServerFaultPath = "/v1/nfs-server/faults"

// NFSServerFaultRequest switches a fault of nfslab's netns NFS server
// (pkg/nfsserver's ServerFault: stop, unexport, expire-clients, fill,
// eio). With For, the daemon switches it off again after that long, on
// its own clock. Path and Blocks are eio's target when switching it on.
type NFSServerFaultRequest struct {
	Netns  string            `json:"netns,omitempty"` // default nfslab-nfsd
	Fault  string            `json:"fault"`
	On     bool              `json:"on"`
	For    duration.Duration `json:"for,omitempty"`
	Path   string            `json:"path,omitempty"`
	Blocks string            `json:"blocks,omitempty"`
}

// NFSServerFaultResponse says what was done and until when.
type NFSServerFaultResponse struct {
	Netns string    `json:"netns"`
	Fault string    `json:"fault"`
	On    bool      `json:"on"`
	Until time.Time `json:"until,omitzero"`
}
