package client

import (
	"context"

	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Client is netfault.Faults through the daemon or in-process, with the
// event stream. Apply returns the fault with its rules as applied and
// Notes on how its lifetime is enforced; Heal returns an error wrapping
// netfault.ErrNotFound when there is no fault with that ID.
type Client interface {
	netfault.Faults
	// Events streams events until ctx ends. The daemon streams all of its
	// events; the direct client only those of its own calls.
	Events(ctx context.Context) (<-chan daemonapi.Event, error)
	// Mode is "daemon" or "direct", for messages.
	Mode() string
	Close() error
}
