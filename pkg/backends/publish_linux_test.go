package backends

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/pkg/nfsserver"
	"github.com/nfslab/nfslab/pkg/publish"
	"github.com/nfslab/nfslab/pkg/scenario"
)

var netnsEP = nfsserver.Endpoint{Addr: netip.MustParseAddr("10.213.0.2"), Port: 2049, Export: "/", ClientAddr: netip.MustParseAddr("10.213.0.1")}

func TestPublishSpec(t *testing.T) {
	st := scenario.Storage{Kind: scenario.StorageNFS, Server: &scenario.NFSServer{Kind: scenario.ServerNetns, Publish: "127.0.0.1:2049"}, Options: "proto=tcp,port=2049,soft,timeo=10"}
	spec, ok, err := PublishSpec(st, netnsEP, "", "scenario-run1")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if spec.From.String() != "127.0.0.1:2049" || spec.To.String() != "10.213.0.2:2049" || spec.Proto != "tcp" || spec.ID != "scenario-run1" {
		t.Fatalf("spec %+v", spec)
	}
	if _, ok, err := PublishSpec(scenario.Storage{}, netnsEP, "", "x"); ok || err != nil {
		t.Fatalf("no publish: %v %v", ok, err)
	}
	for _, c := range []struct{ publish, options, want string }{
		{"127.0.0.1:12049", "port=2049,soft", "port=2049 but storage.server.publish 127.0.0.1:12049"},
		{"[::1]:2049", "", "IPv6"},
		{"localhost:2049", "", `"localhost:2049" is not ADDRESS:PORT`},
	} {
		st := st
		sv := *st.Server
		sv.Publish = c.publish
		st.Server, st.Options = &sv, c.options
		if _, _, err := PublishSpec(st, netnsEP, "", "x"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want %q", c.publish, c.options, err, c.want)
		}
	}
	// A port on the endpoint of 0 means the NFS port.
	spec, _, _ = PublishSpec(st, nfsserver.Endpoint{Addr: netnsEP.Addr}, "", "x")
	if spec.To.Port() != 2049 {
		t.Fatalf("to %v", spec.To)
	}
}

func TestPublishID(t *testing.T) {
	for in, want := range map[string]string{
		"/run/nfslab/mnt/scenario-20260612T160128-nfs-localhost-pitfall": "20260612t160128-nfs-localhost-pitfall",
		"/run/nfslab/mnt/scenario-run1":                                  "scenario-run1",
		"/x/Scenario_A.B":                                                "scenario-a-b",
	} {
		got := publishID(in)
		if got != want || (publish.Spec{ID: got, From: netip.MustParseAddrPort("127.0.0.1:1"), To: netip.AddrPortFrom(netnsEP.Addr, 2049)}).WithDefaults().Validate() != nil {
			t.Errorf("publishID(%q) = %q, want %q (valid)", in, got, want)
		}
	}
	if id := publishID("/"); id == "" {
		t.Error("empty id")
	}
}

type fakePublisher struct {
	calls []string
	err   error
}

func (f *fakePublisher) Publish(_ context.Context, s publish.Spec) (publish.Record, error) {
	f.calls = append(f.calls, "publish "+s.ID+" "+s.From.String()+"->"+s.To.String())
	return publish.Record{Spec: s}, f.err
}

func (f *fakePublisher) Unpublish(_ context.Context, ns, id string) error {
	f.calls = append(f.calls, "unpublish "+ns+" "+id)
	return nil
}

// The storage's hooks: publish rewrites the endpoint to mount to the
// published address, unpublish removes it once (a second Teardown, or one
// after a failed Setup, does nothing).
func TestNFSStoragePublishHooks(t *testing.T) {
	fp := &fakePublisher{}
	s := &NFSStorage{Spec: scenario.Storage{Server: &scenario.NFSServer{Publish: "127.0.0.1:2049"}}, MountDir: "/run/nfslab/mnt/scenario-r1"}
	s.pub.P = fp
	ep, err := s.publish(context.Background(), netnsEP)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Source() != "127.0.0.1:/" || ep.Port != 2049 {
		t.Fatalf("endpoint %+v", ep)
	}
	for range 2 {
		if err := s.unpublish(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	want := "publish scenario-r1 127.0.0.1:2049->10.213.0.2:2049|unpublish  scenario-r1"
	if got := strings.Join(fp.calls, "|"); got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
	// Without publish, nothing is called and the endpoint stays.
	fp.calls = nil
	s2 := &NFSStorage{MountDir: "/m/x"}
	s2.pub.P = fp
	if ep, err := s2.publish(context.Background(), netnsEP); err != nil || ep != netnsEP || len(fp.calls) != 0 {
		t.Fatalf("%+v %v %q", ep, err, fp.calls)
	}
	// A failed publish leaves nothing to unpublish.
	fp.err = errors.New("iptables: exit status 4")
	if _, err := s.publish(context.Background(), netnsEP); err == nil || !strings.Contains(err.Error(), "publishing 127.0.0.1:2049 to the NFS server at 10.213.0.2:2049") {
		t.Fatalf("err %v", err)
	}
	fp.calls = nil
	if err := s.unpublish(context.Background()); err != nil || len(fp.calls) != 0 {
		t.Fatalf("%v %q", err, fp.calls)
	}
}
