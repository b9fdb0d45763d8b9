package backends

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// stubServer is a started server of a given kind.
type stubServer struct {
	kind    string
	stopErr error
}

func (s stubServer) Start(context.Context) (nfsserver.Endpoint, error) {
	return nfsserver.Endpoint{}, nil
}
func (s stubServer) Stop(context.Context) error { return s.stopErr }
func (s stubServer) Kind() string               { return s.kind }

// The container server's export is the run's, in /run/nfslab/export:
// Teardown removes it once the container is gone, and only then.
func TestTeardownRemovesContainerExport(t *testing.T) {
	if got := ContainerExportDir("nfs-localhost-pitfall-20261202T141345.420Z"); got != "/run/nfslab/export/nfs-localhost-pitfall-20261202T141345.420Z" {
		t.Errorf("ContainerExportDir = %q", got)
	}
	for _, tc := range []struct {
		srv  stubServer
		gone bool
	}{
		{stubServer{kind: nfsserver.KindContainer}, true},
		{stubServer{kind: nfsserver.KindContainer, stopErr: errors.New("podman gone")}, false},
		{stubServer{kind: nfsserver.KindNetns}, false},
	} {
		export := filepath.Join(t.TempDir(), "export")
		if err := os.MkdirAll(filepath.Join(export, "srv"), 0o755); err != nil {
			t.Fatal(err)
		}
		s := &NFSStorage{Container: ContainerServerEnv{ExportDir: export}, server: tc.srv}
		err := s.Teardown(context.Background())
		if (err != nil) != (tc.srv.stopErr != nil) {
			t.Errorf("%+v: Teardown: %v", tc.srv, err)
		}
		if _, serr := os.Stat(export); os.IsNotExist(serr) != tc.gone {
			t.Errorf("%+v: export removed %v, want %v", tc.srv, os.IsNotExist(serr), tc.gone)
		}
	}
}
