package backends

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/nfsserver"
	"github.com/nfslab/nfslab/pkg/publish"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// Publisher is what NFSStorage needs of pkg/publish; *publish.Publisher
// satisfies it, tests use a fake.
type Publisher interface {
	Publish(ctx context.Context, spec publish.Spec) (publish.Record, error)
	Unpublish(ctx context.Context, netns, id string) error
}

// publishState is NFSStorage's storage.server.publish: the DNAT podman's
// `-p 127.0.0.1:2049:2049` would make, in front of the started server.
type publishState struct {
	// P makes the publish; nil: pkg/publish on the real kernel.
	P Publisher
	// Netns is where the NFS client runs ("" = this process's namespace,
	// the lab VM's host side of the veth).
	Netns string
	rec   *publish.Record
}

// PublishSpec returns the publish of storage st in front of the started
// server ep, with id as its tag, or ok=false when st publishes nothing.
// The mount then goes to the published address: the scenario's options
// must name the published port (or none).
func PublishSpec(st scenario.Storage, ep nfsserver.Endpoint, netns, id string) (spec publish.Spec, ok bool, err error) {
	if st.Server == nil || st.Server.Publish == "" || st.Server.Kind == scenario.ServerContainer {
		// A container server is published by podman itself.
		return spec, false, nil
	}
	from, err := netip.ParseAddrPort(st.Server.Publish)
	if err != nil {
		return spec, false, fmt.Errorf("storage.server.publish %q is not ADDRESS:PORT: %w", st.Server.Publish, err)
	}
	if st.Options != "" {
		o, err := mount.ParseNFSOptions(st.Options)
		if err != nil {
			return spec, false, err
		}
		if o.Port != 0 && o.Port != int(from.Port()) {
			return spec, false, fmt.Errorf("storage.options port=%d but storage.server.publish %s: the mount goes to the published port", o.Port, from)
		}
	}
	port := ep.Port
	if port == 0 {
		port = nfsserver.NFSPort
	}
	spec = publish.Spec{ID: id, Netns: netns, From: from, To: netip.AddrPortFrom(ep.Addr, uint16(port))}.WithDefaults()
	if err := spec.Validate(); err != nil {
		return spec, false, fmt.Errorf("storage.server.publish %s: %w", st.Server.Publish, err)
	}
	return spec, true, nil
}

var nonID = regexp.MustCompile(`[^a-z0-9-]+`)

// publishID tags the publish with the mount's name (scenario-RUN), so
// iptables-save says whose DNAT it is.
func publishID(mountDir string) string {
	id := strings.Trim(nonID.ReplaceAllString(strings.ToLower(filepath.Base(mountDir)), "-"), "-")
	if len(id) > 40 {
		id = strings.TrimPrefix(id, "scenario-")
	}
	if len(id) > 40 {
		id = strings.Trim(id[len(id)-40:], "-")
	}
	if id == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	return id
}

// publish puts the scenario's published address in front of the started
// server and returns the endpoint to mount: the published address and
// port. Without storage.server.publish it returns ep unchanged.
func (s *NFSStorage) publish(ctx context.Context, ep nfsserver.Endpoint) (nfsserver.Endpoint, error) {
	spec, ok, err := PublishSpec(s.Spec, ep, s.pub.Netns, publishID(s.MountDir))
	if err != nil || !ok {
		return ep, err
	}
	s.mu.Lock()
	if s.pub.P == nil {
		s.pub.P = publish.New(publish.Options{})
	}
	p := s.pub.P
	s.mu.Unlock()
	rec, err := p.Publish(ctx, spec)
	if err != nil {
		return ep, fmt.Errorf("publishing %s to the NFS server at %s: %w", spec.From, spec.To, err)
	}
	s.mu.Lock()
	s.pub.rec = &rec
	s.mu.Unlock()
	ep.Addr, ep.Port = spec.From.Addr(), int(spec.From.Port())
	return ep, nil
}

// unpublish removes the publish, if any. Teardown calls it after the
// unmount (the mount's traffic still goes through the DNAT) and before the
// server stops.
func (s *NFSStorage) unpublish(ctx context.Context) error {
	s.mu.Lock()
	rec, p := s.pub.rec, s.pub.P
	s.pub.rec = nil
	s.mu.Unlock()
	if rec == nil {
		return nil
	}
	if err := p.Unpublish(ctx, rec.Spec.Netns, rec.Spec.ID); err != nil {
		return fmt.Errorf("removing the publish of %s: %w", rec.Spec.From, err)
	}
	return nil
}
