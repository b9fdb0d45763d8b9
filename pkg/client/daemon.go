package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// Daemon is a Client that talks HTTP/JSON to the daemon's unix socket.
type Daemon struct {
	socket string
	hc     *http.Client
}

var _ Client = (*Daemon)(nil)

// ErrForbidden is returned when the daemon refuses this user.
var ErrForbidden = errors.New("daemon refused this user")

// NewDaemon returns a client for the daemon listening on socket. It does
// not connect; Ping does.
func NewDaemon(socket string) *Daemon {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 64,
	}
	return &Daemon{socket: socket, hc: &http.Client{Transport: tr}}
}

func (d *Daemon) Mode() string { return "daemon" }

func (d *Daemon) Close() error {
	d.hc.CloseIdleConnections()
	return nil
}

// Ping asks the daemon for its health.
func (d *Daemon) Ping(ctx context.Context) (daemonapi.Health, error) {
	var h daemonapi.Health
	err := d.do(ctx, http.MethodGet, "/v1/health", nil, nil, http.StatusOK, &h)
	return h, err
}

func nsQuery(netns string) url.Values { return url.Values{"netns": {netns}} }

func (d *Daemon) do(ctx context.Context, method, path string, q url.Values, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := "http://nfslab" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return fmt.Errorf("talking to daemon at %s: %w", d.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return decodeError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding daemon reply to %s %s: %w", method, path, err)
	}
	return nil
}

// decodeError turns an error reply back into the sentinel errors the
// direct path returns, so callers map both paths the same way.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var er daemonapi.ErrorResponse
	msg := string(bytes.TrimSpace(b))
	if json.Unmarshal(b, &er) == nil && er.Error != "" {
		msg = er.Error
	}
	switch resp.StatusCode {
	case http.StatusBadRequest:
		return &remoteError{msg: msg, is: netfault.ErrInvalid}
	case http.StatusNotFound:
		return &remoteError{msg: msg, is: netfault.ErrNotFound}
	case http.StatusForbidden:
		return &remoteError{msg: msg, is: ErrForbidden}
	default:
		return fmt.Errorf("daemon: %s (HTTP %d)", msg, resp.StatusCode)
	}
}

// remoteError carries the daemon's message (which already names the
// sentinel) and matches the sentinel with errors.Is.
type remoteError struct {
	msg string
	is  error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.is }

func (d *Daemon) Apply(ctx context.Context, spec netfault.Spec) (netfault.Fault, error) {
	var f netfault.Fault
	err := d.do(ctx, http.MethodPost, "/v1/faults", nil, spec, http.StatusCreated, &f)
	return f, err
}

func (d *Daemon) Plan(ctx context.Context, spec netfault.Spec) (netfault.Plan, error) {
	var p netfault.Plan
	err := d.do(ctx, http.MethodPost, "/v1/faults/plan", nil, spec, http.StatusOK, &p)
	return p, err
}

func (d *Daemon) List(ctx context.Context, netns string) ([]netfault.Fault, error) {
	var fs []netfault.Fault
	err := d.do(ctx, http.MethodGet, "/v1/faults", nsQuery(netns), nil, http.StatusOK, &fs)
	return fs, err
}

func (d *Daemon) Heal(ctx context.Context, netns, id string) error {
	return d.do(ctx, http.MethodDelete, "/v1/faults/"+url.PathEscape(id), nsQuery(netns), nil, http.StatusNoContent, nil)
}

func (d *Daemon) HealAll(ctx context.Context, netns string) ([]string, error) {
	var r daemonapi.HealAllResponse
	err := d.do(ctx, http.MethodDelete, "/v1/faults", nsQuery(netns), nil, http.StatusOK, &r)
	return r.IDs, err
}

func (d *Daemon) Diagnose(ctx context.Context, netns, id string) ([]netfault.Finding, error) {
	var fs []netfault.Finding
	err := d.do(ctx, http.MethodGet, "/v1/faults/"+url.PathEscape(id)+"/diagnose", nsQuery(netns), nil, http.StatusOK, &fs)
	return fs, err
}

// NFSServerFault switches a fault of nfslab's netns NFS server on the
// daemon's machine; with req.For the daemon switches it off again on its
// own clock, whatever becomes of this process. A bad request wraps
// netfault.ErrInvalid, a server that does not run netfault.ErrNotFound.
func (d *Daemon) NFSServerFault(ctx context.Context, req daemonapi.NFSServerFaultRequest) (daemonapi.NFSServerFaultResponse, error) {
	var r daemonapi.NFSServerFaultResponse
	err := d.do(ctx, http.MethodPost, daemonapi.NFSServerFaultPath, nil, req, http.StatusOK, &r)
	return r, err
}

// Events streams the daemon's events until ctx ends or the daemon stops;
// the channel is closed then.
func (d *Daemon) Events(ctx context.Context) (<-chan daemonapi.Event, error) {
	return d.EventsSince(ctx, 0, false)
}

// EventsSince is Events that first replays the daemon's recent events after
// seq when replay is set.
func (d *Daemon) EventsSince(ctx context.Context, seq uint64, replay bool) (<-chan daemonapi.Event, error) {
	u := "http://nfslab/v1/events"
	if replay {
		u += fmt.Sprintf("?since=%d", seq)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("subscribing to daemon events at %s: %w", d.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	ch := make(chan daemonapi.Event, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e daemonapi.Event
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			select {
			case ch <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}
