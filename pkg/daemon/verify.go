package daemon

import (
	"context"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Verdict is the outcome of watching a fault's counters for a window.
type Verdict = netfault.Verdict

// VerifyFunc watches fault id in netns until its counters move or window
// ends; on a zero-hit window it returns the injector's diagnosis.
// netfault.Verify is the default.
type VerifyFunc func(ctx context.Context, inj netfault.Injector, clk clock.Clock, netns, id string, window, poll time.Duration) (Verdict, error)
