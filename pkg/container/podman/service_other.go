//go:build !linux

package podman

import (
	"context"
	"errors"
	"io"

	"github.com/nfslab/nfslab/internal/proctrack"
)

// ServiceOptions configure a podman service started by nfslab (Linux only).
type ServiceOptions struct {
	Socket  string
	Log     io.Writer
	Records *proctrack.Store
}

// Service is a podman service process nfslab started.
type Service struct{ URI string }

// StartService needs Linux.
func StartService(context.Context, ServiceOptions) (*Service, error) {
	return nil, errors.New("starting a podman service needs Linux")
}

// PID is 0 without Linux.
func (s *Service) PID() int { return 0 }

// Stop has nothing to stop.
func (s *Service) Stop() error { return nil }
