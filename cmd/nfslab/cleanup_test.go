package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/cleanup"
	"github.com/nfslab/nfslab/pkg/client/clienttest"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// fakeHost is a cleanup.Options over temporary roots and fakes: one NFS
// mount, one stale faultfs socket, one attached namespace name, one NFS
// server's state, and no podman. calls records what the sweep touched.
func fakeHost(t *testing.T) (cleanup.Options, *[]string) {
	t.Helper()
	base := t.TempDir()
	calls := &[]string{}
	o := cleanup.Options{
		Podman: func(context.Context) (container.Runtime, error) {
			*calls = append(*calls, "podman")
			return nil, fmt.Errorf("%w at unix:///x", container.ErrNoService)
		},
		NetnsDir: filepath.Join(base, "netns"),
		Detach: func(string) ([]string, error) {
			*calls = append(*calls, "detach")
			return []string{"nfslab-ctr-zeebe"}, nil
		},
		FaultfsRoot: filepath.Join(base, "faultfs"),
		MountRoot:   filepath.Join(base, "mnt"),
		NFSDRoot:    filepath.Join(base, "nfsd"),
		Servers: func(_ context.Context, name, dir string) error {
			*calls = append(*calls, "stop "+name)
			return os.RemoveAll(dir)
		},
	}
	for _, d := range []string{o.FaultfsRoot, o.MountRoot, filepath.Join(o.NFSDRoot, "nfslab-nfsd")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(o.FaultfsRoot, "zb.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m := mount.NewFake()
	m.AddDir(o.MountRoot + "/zeebe")
	if err := m.Mount(context.Background(), "10.213.0.2:/", o.MountRoot+"/zeebe", "nfs4", nil); err != nil {
		t.Fatal(err)
	}
	o.Mounter = m
	return o, calls
}

func TestHealAllSweepsEverything(t *testing.T) {
	lab := newFakeLab()
	if _, err := lab.inj.Apply(context.Background(), netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5"}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	o, calls := fakeHost(t)
	ctx := withCleanupOptions(lab.ctx(), o)
	out, stderr, code := runCLI(t, ctx, "heal", "--all")
	if code != 0 {
		t.Fatalf("heal --all: %d\n%s\n%s", code, out, stderr)
	}
	want := []string{
		"healed 1 fault(s) in the host namespace",
		"removed 1 container namespace name(s): nfslab-ctr-zeebe",
		"removed 1 faultfs mount(s) and socket(s): " + o.FaultfsRoot + "/zb.sock (stale control socket)",
		"removed 1 mount(s): " + o.MountRoot + "/zeebe",
		"removed 1 netns NFS server(s): nfslab-nfsd",
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want %q", i, lines[i], w)
		}
	}
	if strings.Join(*calls, ",") != "podman,detach,stop nfslab-nfsd" {
		t.Errorf("calls %q", *calls)
	}
	// Again: nothing left, "not found" is done.
	out, _, code = runCLI(t, ctx, "heal", "--all")
	if code != 0 || !strings.Contains(out, "nothing to heal") || strings.Contains(out, "mount(s)") {
		t.Errorf("second heal --all: %d\n%s", code, out)
	}
}

func TestHealAllFaultsOnlyAndNetnsLeaveTheRest(t *testing.T) {
	for _, args := range [][]string{{"heal", "--all", "--faults-only"}, {"heal", "--all", "--netns", "lab"}} {
		o, calls := fakeHost(t)
		out, stderr, code := runCLI(t, withCleanupOptions(newFakeLab().ctx(), o), args...)
		if code != 0 || len(*calls) != 0 || strings.Contains(out, "removed") {
			t.Errorf("%q: %d calls %q\n%s%s", args, code, *calls, out, stderr)
		}
	}
	_, stderr, code := runCLI(t, newFakeLab().ctx(), "heal", "x", "--faults-only")
	if code != 2 || !strings.Contains(stderr, "--faults-only goes with --all") {
		t.Errorf("--faults-only without --all: %d %s", code, stderr)
	}
}

func TestHealAllReportsAFailedStepAndExits1(t *testing.T) {
	o, _ := fakeHost(t)
	o.Servers = func(context.Context, string, string) error { return errors.New("ip netns del: busy") }
	out, stderr, code := runCLI(t, withCleanupOptions(newFakeLab().ctx(), o), "heal", "--all")
	if code != 1 || !strings.Contains(out, "removed 1 mount(s)") || !strings.Contains(out, "could not clean up netns NFS server(s)") ||
		!strings.Contains(stderr, "ip netns del: busy") {
		t.Errorf("%d\n%s\n%s", code, out, stderr)
	}
}

// A test that fakes the fault client but names no cleanup must not sweep
// the real machine.
func TestCleanupOptionsNeverHostUnderFakes(t *testing.T) {
	g := &globals{}
	o := cleanupOptions(newFakeLab().ctx(), g, nil)
	if o.MountRoot != "" || o.FaultfsRoot != "" || o.NFSDRoot != "" || o.NetnsDir != "" || o.Podman != nil {
		t.Fatalf("fake client got host cleanup %+v", o)
	}
	o = cleanupOptions(context.Background(), g, nil)
	if o.MountRoot != mount.DefaultRoot || o.FaultfsRoot != cleanup.DefaultFaultfsRoot || o.Faults != nil {
		t.Fatalf("host cleanup %+v", o)
	}
}

// TestDaemonStartSweepsEverything: `nfslab daemon` runs the full cleanup
// at start and publishes sweep-removed events; with --host-netns=false it
// leaves host objects alone.
func TestDaemonStartSweepsEverything(t *testing.T) {
	for _, host := range []bool{true, false} {
		t.Run(fmt.Sprint("host=", host), func(t *testing.T) {
			dir, err := os.MkdirTemp("", "nfslc-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			sock := filepath.Join(dir, "d.sock")
			o, calls := fakeHost(t)
			inj := clienttest.New(clock.Real{})
			stop := startDaemon(t, withCleanupOptions(context.WithValue(context.Background(), daemonInjectorKey{}, netfault.Injector(inj)), o), sock, fmt.Sprint("--host-netns=", host))
			hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}}}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x/v1/events?since=0", nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var steps []string
			dec := json.NewDecoder(resp.Body)
			for {
				var e daemonapi.Event
				if dec.Decode(&e) != nil {
					break
				}
				if e.Type == daemonapi.EventSweepRemoved {
					var sr cleanup.StepReport
					_ = json.Unmarshal(e.Data, &sr)
					steps = append(steps, sr.Step)
				}
			}
			resp.Body.Close()
			if code := stop(); code != 0 {
				t.Fatalf("daemon exit %d", code)
			}
			want := "netns-names,faultfs,mounts,nfs-server"
			if !host {
				want = ""
			}
			if got := strings.Join(steps, ","); got != want {
				t.Errorf("sweep-removed steps %q, want %q (calls %q)", got, want, *calls)
			}
		})
	}
}
