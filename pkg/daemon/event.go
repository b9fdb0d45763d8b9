package daemon

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/nfslab/nfslab/pkg/netfault"
)

// Event types published by the fault service. Other services use their own
// types (for example "faultfs-applied").
const (
	EventFaultApplied        = "fault-applied"
	EventFaultHealed         = "fault-healed"
	EventFaultExpired        = "fault-expired"
	EventFaultMatchedNothing = "fault-matched-nothing"
	EventFaultFirstHit       = "fault-first-hit"
	EventSweepRemoved        = "sweep-removed"
	EventError               = "error"
)

// Event is one line of the /v1/events stream.
type Event struct {
	// Seq increases by one per published event; Publish sets it.
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

// bus fans events out to subscribers and keeps the latest ones so that a
// subscriber can ask for events it missed (?since=SEQ).
type bus struct {
	mu     sync.Mutex
	seq    uint64
	recent []Event
	subs   map[chan Event]struct{}
}

const recentEvents = 512

func newBus() *bus { return &bus{subs: map[chan Event]struct{}{}} }

func (b *bus) publish(e Event) Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Seq = b.seq
	b.recent = append(b.recent, e)
	if len(b.recent) > recentEvents {
		b.recent = append(b.recent[:0:0], b.recent[len(b.recent)-recentEvents:]...)
	}
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			// A subscriber that does not keep up loses events rather than
			// blocking fault handling; it sees the gap in Seq.
		}
	}
	return e
}

// subscribe returns a channel of events after seq since (0: only new ones)
// and a function that ends the subscription.
func (b *bus) subscribe(since uint64, replay bool) (<-chan Event, func()) {
	ch := make(chan Event, 256)
	b.mu.Lock()
	if replay {
		for _, e := range b.recent {
			if e.Seq > since {
				select {
				case ch <- e:
				default:
				}
			}
		}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}
}
