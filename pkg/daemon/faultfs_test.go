package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/cleanup"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/daemon"
	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/faultfs"
)

// serveFaultfs serves faultfs's rule API on DIR/NAME.sock, as `nfslab
// faultfs mount` does, over an in-memory engine.
func serveFaultfs(t *testing.T, dir, name string) *faultfs.Engine {
	t.Helper()
	eng := faultfs.NewEngine(clock.NewFake(t0), nil)
	ln, err := net.Listen("unix", filepath.Join(dir, name+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: faultfs.Handler(eng)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return eng
}

// viaDaemon is a faultfs client whose requests go through the daemon's
// proxy: the same client the CLI uses on the control socket.
func viaDaemon(sock, name string) *faultfs.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	return &faultfs.Client{HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}, Base: "http://nfslab/v1/faultfs/" + name}
}

func TestFaultfsProxyReachesControlSocket(t *testing.T) {
	dir := shortDir(t)
	eng := serveFaultfs(t, dir, "zb")
	e := start(t, daemon.Options{FaultfsDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := e.cli.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := viaDaemon(e.socket, "zb")
	r, err := c.Set(ctx, faultfs.Rule{Op: faultfs.OpFsync, Errno: faultfs.Errno(syscall.EIO)})
	if err != nil {
		t.Fatalf("set through the daemon: %v", err)
	}
	if got := eng.Rules(); len(got) != 1 || got[0].ID != r.ID {
		t.Fatalf("the faultfs behind the socket has rules %+v, want %s", got, r.ID)
	}
	ev := next(t, events, daemonapi.EventFaultfsChanged)
	if !strings.Contains(string(ev.Data), `"name":"zb"`) || !strings.Contains(ev.Message, "POST /rules") {
		t.Errorf("event %+v data %s", ev, ev.Data)
	}
	if rules, err := c.Rules(ctx); err != nil || len(rules) != 1 {
		t.Fatalf("list through the daemon: %v %v", rules, err)
	}
	// Bad input keeps its status through the proxy (exit 2 in the CLI).
	if _, err := c.Set(ctx, faultfs.Rule{Op: "nope"}); !errors.Is(err, faultfs.ErrInvalid) {
		t.Errorf("bad rule through the daemon: %v", err)
	}
	if err := c.Clear(ctx, "r-missing"); !errors.Is(err, faultfs.ErrNotFound) {
		t.Errorf("clearing a missing rule: %v", err)
	}
	if err := c.Clear(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if got := eng.Rules(); len(got) != 0 {
		t.Fatalf("rules after clear through the daemon: %+v", got)
	}

	// GET /v1/faultfs lists the socket, live.
	var list []daemon.FaultfsInstance
	getJSON(t, e.socket, "/v1/faultfs", &list)
	if len(list) != 1 || list[0].Name != "zb" || !list[0].Live {
		t.Fatalf("list %+v", list)
	}
}

func TestFaultfsProxyUnknownAndStale(t *testing.T) {
	dir := shortDir(t)
	// A stale socket: a server that listened once and is gone.
	ln, err := net.Listen("unix", filepath.Join(dir, "gone.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	e := start(t, daemon.Options{FaultfsDir: dir})
	ctx := context.Background()
	_, err = viaDaemon(e.socket, "nosuch").Rules(ctx)
	var api *faultfs.APIError
	if !errors.As(err, &api) || api.Status != http.StatusNotFound || !strings.Contains(api.Message, "no faultfs named") {
		t.Errorf("unknown name: %v", err)
	}
	_, err = viaDaemon(e.socket, "gone").Rules(ctx)
	if !errors.As(err, &api) || api.Status != http.StatusBadGateway || !strings.Contains(api.Message, "does not answer") {
		t.Errorf("stale socket: %v", err)
	}
	_, err = viaDaemon(e.socket, "..").Rules(ctx)
	if !errors.As(err, &api) || api.Status/100 != 4 {
		t.Errorf("bad name: %v", err)
	}
	var list []daemon.FaultfsInstance
	getJSON(t, e.socket, "/v1/faultfs", &list)
	if len(list) != 1 || list[0].Live || list[0].Error == "" {
		t.Fatalf("list %+v", list)
	}
}

// TestStartRunsCleanup: the daemon runs the cleanup at start, publishes
// what each step removed, and still starts when a step failed.
func TestStartRunsCleanup(t *testing.T) {
	calls := 0
	e := start(t, daemon.Options{Cleanup: func(context.Context) (cleanup.Report, error) {
		calls++
		return cleanup.Report{Steps: []cleanup.StepReport{
			{Step: cleanup.StepContainers, Removed: []string{"nfslab-zeebe"}},
			{Step: cleanup.StepNetnsNames},
			{Step: cleanup.StepFaultfs, Removed: []string{"/run/nfslab/faultfs/zb"}, Kept: []string{"/run/nfslab/faultfs/live (its faultfs server answers on live.sock)"}},
			{Step: cleanup.StepMounts, Error: "unmounting /run/nfslab/mnt/x: device busy"},
		}}, errors.New("mounts: unmounting /run/nfslab/mnt/x: device busy")
	}})
	if calls != 1 {
		t.Fatalf("cleanup ran %d times", calls)
	}
	var evs []daemonapi.Event
	resp := getResp(t, e.socket, "/v1/events?since=0")
	dec := json.NewDecoder(resp.Body)
	for len(evs) < 3 {
		var ev daemonapi.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("reading events: %v (have %+v)", err, evs)
		}
		evs = append(evs, ev)
	}
	resp.Body.Close()
	if evs[0].Type != daemonapi.EventSweepRemoved || evs[0].IDs[0] != "nfslab-zeebe" || !strings.Contains(string(evs[0].Data), `"step":"containers"`) {
		t.Errorf("first event %+v", evs[0])
	}
	if evs[1].Type != daemonapi.EventSweepRemoved || !strings.Contains(evs[1].Message, "kept 1 in use") {
		t.Errorf("second event %+v", evs[1])
	}
	if evs[2].Type != daemonapi.EventError || !strings.Contains(evs[2].Message, "device busy") {
		t.Errorf("third event %+v", evs[2])
	}
}

func getResp(t *testing.T, sock, path string) *http.Response {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://x" + path)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func getJSON(t *testing.T, sock, path string, v any) {
	t.Helper()
	resp := getResp(t, sock, path)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}
