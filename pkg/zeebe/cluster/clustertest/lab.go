// Package clustertest gives cluster.Target fakes for every seam: a fake
// podman (container.Fake, with the default image present), an in-process
// gateway (zeebetest), and network namespaces that exist only as names
// with an address per broker.
package clustertest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/zeebe"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster"
	"github.com/nfslab/nfslab/pkg/zeebe/zeebetest"
)

// Lab is a fake podman, a fake gateway and fake namespaces.
type Lab struct {
	RT *container.Fake
	GW *zeebetest.Gateway
	// Topology, if set, answers the gateway's Topology (a cluster's
	// leaders); nil leaves the fake gateway's own (one broker leads all).
	Topology *zeebe.Topology
}

// New starts a fake gateway with partitions partitions, closed at the end
// of t.
func New(t testing.TB, partitions int32) *Lab {
	t.Helper()
	gw, err := zeebetest.Start(partitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	rt := container.NewFake(nil)
	rt.AddImage(container.DefaultZeebeImage)
	return &Lab{RT: rt, GW: gw}
}

// topoClient answers Topology from the lab and everything else from the
// fake gateway.
type topoClient struct {
	zeebe.Client
	top zeebe.Topology
}

func (c topoClient) Topology(context.Context) (zeebe.Topology, error) { return c.top, nil }

// Options are cluster.Options over the lab's fakes; broker N's address is
// 10.88.0.1N, as podman's bridge might number them.
func (l *Lab) Options() cluster.Options {
	return cluster.Options{
		Runtime: func(context.Context) (container.Runtime, error) { return l.RT, nil },
		Dial: func(string) (zeebe.Client, error) {
			c, err := zeebe.Dial(zeebe.Config{Address: l.GW.Addr, Insecure: true})
			if err != nil || l.Topology == nil {
				return c, err
			}
			return topoClient{Client: c, top: *l.Topology}, nil
		},
		Probe: func(context.Context, string) (bool, error) { return true, nil },
		AttachNetns: func(ctx context.Context, rt container.Runtime, ctr string) (string, error) {
			in, err := rt.Inspect(ctx, ctr)
			if err != nil {
				return "", err
			}
			if _, err := in.NetnsPath(); err != nil {
				return "", err
			}
			return container.NetnsName(ctr), nil
		},
		DetachNetns: func(string) error { return nil },
		AddrOf: func(_ context.Context, ns string) (string, error) {
			i := strings.LastIndex(ns, "-broker-")
			if i < 0 || !strings.HasPrefix(ns, container.NetnsPrefix) {
				return "", os.ErrNotExist
			}
			return "10.88.0.1" + ns[i+len("-broker-"):], nil
		},
		SampleInterval: 100 * time.Millisecond,
	}
}
