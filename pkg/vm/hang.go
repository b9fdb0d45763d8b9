package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
)

// The agent's heartbeat: a counter it rewrites on the share while it runs.
// A guest kernel that locks up (both vCPUs spinning in podman and conmon
// under TCG: CI, 2026-12-03) prints nothing that ends qemu, and the boot
// then ate the whole of CI's budget up to its own timeout. The host reads
// the heartbeat instead: when it stops, the guest has stopped, whatever
// the kernel printed.
const (
	// HeartbeatFile is the heartbeat's name on the share.
	HeartbeatFile = "heartbeat"
	// HeartbeatEvery is how often the agent beats and the host looks.
	HeartbeatEvery = 10 * time.Second
	// DefaultHangTimeout is how long the host waits for a beat before it
	// declares the guest hung: well above a busy TCG guest's pauses (a
	// goroutine that writes a file is never starved that long), well
	// below a scenario step's timeout.
	DefaultHangTimeout = 4 * time.Minute
)

// ErrGuestHung marks a boot the host ended because the agent's heartbeat
// stopped.
var ErrGuestHung = errors.New("the guest stopped answering")

// Beat rewrites path with a rising counter every `every` until ctx ends.
// A failed write is retried at the next beat: the host judges by the
// counter, not by any one write.
func Beat(ctx context.Context, clk clock.Clock, path string, every time.Duration) {
	tmp := path + ".tmp"
	for n := 1; ; n++ {
		if os.WriteFile(tmp, []byte(strconv.Itoa(n)+"\n"), 0o644) == nil {
			_ = os.Rename(tmp, path)
		}
		select {
		case <-ctx.Done():
			return
		case <-clk.After(every):
		}
	}
}

// WatchHeartbeat reads path every `every` and returns an error wrapping
// ErrGuestHung once its content has not changed for `limit` (a missing
// file counts as unchanged: the agent writes it first thing). It returns
// nil when ctx ends.
func WatchHeartbeat(ctx context.Context, clk clock.Clock, path string, every, limit time.Duration) error {
	last, _ := os.ReadFile(path)
	since := clk.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-clk.After(every):
		}
		b, _ := os.ReadFile(path)
		now := clk.Now()
		if !bytes.Equal(b, last) {
			last, since = b, now
			continue
		}
		if d := now.Sub(since); d >= limit {
			return fmt.Errorf("%w: no heartbeat from the agent for %s (%s)", ErrGuestHung, d.Round(time.Second), filepath.Base(path))
		}
	}
}
