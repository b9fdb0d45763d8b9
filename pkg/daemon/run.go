package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Run starts s (sweeping leftovers), serves it on ln until ctx ends (SIGTERM
// or SIGINT in the daemon command), then heals every fault s applied.
func Run(ctx context.Context, s *Server, ln net.Listener) error {
	defer ln.Close()
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("removing leftovers at start: %w", err)
	}
	s.log.Info("daemon ready", "addr", ln.Addr().String(), "namespaces", s.managed())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
		s.log.Info("stopping: healing every fault this daemon applied")
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	healed, err := s.Shutdown(sctx)
	s.log.Info("stopped", "healed", healed)
	return errors.Join(serveErr, err)
}
