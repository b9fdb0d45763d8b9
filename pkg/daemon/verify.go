package daemon

import (
	"context"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// VerifyFunc watches fault id in netns until its counters move or window
// ends; on a zero-hit window it returns the injector's diagnosis.
// netfault.Verify is the default.
type VerifyFunc func(ctx context.Context, faults netfault.Faults, clk clock.Clock, netns, id string, window, poll time.Duration) (netfault.Verdict, error)
