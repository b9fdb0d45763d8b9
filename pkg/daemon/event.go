package daemon

import (
	"sync"

	"github.com/nfslab/nfslab/pkg/daemonapi"
)

// bus fans events out to subscribers and keeps the latest ones so that a
// subscriber can ask for events it missed (?since=SEQ).
type bus struct {
	mu     sync.Mutex
	seq    uint64
	recent []daemonapi.Event
	subs   map[chan daemonapi.Event]struct{}
}

const recentEvents = 512

func newBus() *bus { return &bus{subs: map[chan daemonapi.Event]struct{}{}} }

func (b *bus) publish(e daemonapi.Event) daemonapi.Event {
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
func (b *bus) subscribe(since uint64, replay bool) (<-chan daemonapi.Event, func()) {
	ch := make(chan daemonapi.Event, 256)
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
