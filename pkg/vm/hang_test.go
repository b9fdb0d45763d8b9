package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
)

// waitWaiters blocks until clk has n pending timers (the goroutine under
// test is waiting), bounded in time.
func waitWaiters(t *testing.T, clk *clock.Fake, n int) {
	t.Helper()
	for i := 0; clk.Waiters() < n; i++ {
		if i > 2000 {
			t.Fatalf("%d timers pending, want %d", clk.Waiters(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBeatCounts(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	path := filepath.Join(t.TempDir(), HeartbeatFile)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Beat(ctx, clk, path, time.Second); close(done) }()
	for _, want := range []string{"1\n", "2\n", "3\n"} {
		waitWaiters(t, clk, 1)
		if b, _ := os.ReadFile(path); string(b) != want {
			t.Errorf("heartbeat %q, want %q", b, want)
		}
		clk.Advance(time.Second)
	}
	cancel()
	<-done
}

// The watch holds while the counter moves and ends with ErrGuestHung once
// it has stood still for the limit, not before.
func TestWatchHeartbeat(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	path := filepath.Join(t.TempDir(), HeartbeatFile)
	errc := make(chan error, 1)
	go func() {
		errc <- WatchHeartbeat(context.Background(), clk, path, 10*time.Second, time.Minute)
	}()
	// 3 minutes of beats (the file appears at the first), then silence.
	for i := range 18 {
		waitWaiters(t, clk, 1)
		if err := os.WriteFile(path, []byte{byte('a' + i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		clk.Advance(10 * time.Second)
	}
	for range 5 {
		waitWaiters(t, clk, 1)
		select {
		case err := <-errc:
			t.Fatalf("ended %s into the silence: %v", clk.Now().Sub(time.Unix(180, 0)), err)
		default:
		}
		clk.Advance(10 * time.Second)
	}
	waitWaiters(t, clk, 1)
	clk.Advance(10 * time.Second)
	err := <-errc
	if !errors.Is(err, ErrGuestHung) || err.Error() != "the guest stopped answering: no heartbeat from the agent for 1m0s (heartbeat)" {
		t.Errorf("err %v", err)
	}

	// Its context's end is not a hang.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errc <- WatchHeartbeat(ctx, clk, path, 10*time.Second, time.Minute) }()
	waitWaiters(t, clk, 1)
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("cancelled watch: %v", err)
	}
}
