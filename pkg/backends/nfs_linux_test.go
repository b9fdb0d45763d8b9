package backends

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/nfsserver"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// A mount that fails with EIO is retried with backoff until it works;
// other errors and an exhausted budget end it; the attempts are counted.
func TestRetryMount(t *testing.T) {
	eio := fmt.Errorf("mounting x: mount(2): %w", syscall.EIO)
	for _, tt := range []struct {
		name     string
		errs     []error // per attempt; nil after the list
		budget   time.Duration
		attempts int
		wantErr  error
	}{
		{"first try", nil, time.Minute, 1, nil},
		{"EIO twice", []error{eio, eio}, time.Minute, 3, nil},
		{"ETIMEDOUT", []error{syscall.ETIMEDOUT}, time.Minute, 2, nil},
		{"not retried", []error{syscall.EACCES}, time.Minute, 1, syscall.EACCES},
		{"budget spent", []error{eio, eio, eio, eio, eio, eio}, 10 * time.Second, 3, syscall.EIO}, // the test advances 8 s per wait: attempts at 0, 8, 16 s
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(time.Unix(0, 0))
			n := 0
			type result struct {
				attempts int
				err      error
			}
			done := make(chan result, 1)
			go func() {
				a, err := retryMount(context.Background(), clk, tt.budget, func() error {
					n++
					if n <= len(tt.errs) {
						return tt.errs[n-1]
					}
					return nil
				})
				done <- result{a, err}
			}()
			var r result
			for i := 0; i < 200; i++ {
				select {
				case r = <-done:
					i = 200
					continue
				default:
				}
				if clk.Waiters() > 0 {
					clk.Advance(8 * time.Second)
				} else {
					time.Sleep(time.Millisecond)
				}
			}
			if r.attempts != tt.attempts || !errors.Is(r.err, tt.wantErr) || (tt.wantErr == nil) != (r.err == nil) {
				t.Errorf("retryMount = %d attempts, %v; want %d, %v", r.attempts, r.err, tt.attempts, tt.wantErr)
			}
		})
	}
}

// A cancelled context ends the wait between attempts.
func TestRetryMountCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a, err := retryMount(ctx, clock.NewFake(time.Unix(0, 0)), time.Minute, func() error { return syscall.EIO })
	if a != 1 || !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.EIO) {
		t.Errorf("retryMount = %d, %v", a, err)
	}
}

// storage.server.localio reaches the netns server's config.
func TestNetnsServerLocalIO(t *testing.T) {
	for _, tc := range []struct {
		localio        string
		allow, disable bool
	}{{"", false, false}, {scenario.LocalIOAllow, true, false}, {scenario.LocalIODisable, false, true}} {
		s := &NFSStorage{Spec: scenario.Storage{Kind: scenario.StorageNFS, Server: &scenario.NFSServer{Kind: scenario.ServerNetns, LocalIO: tc.localio}}, Host: nfsserver.NewHost()}
		srv, err := s.newServer(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		c := srv.(*nfsserver.NetnsServer).Config()
		if c.AllowLocalIO != tc.allow || c.DisableLocalIO != tc.disable {
			t.Errorf("localio %q: allow %v disable %v", tc.localio, c.AllowLocalIO, c.DisableLocalIO)
		}
	}
}
