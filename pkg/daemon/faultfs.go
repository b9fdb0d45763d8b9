package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/faultfs"
)

// faultfsNameRE is the name rule of `nfslab faultfs mount --name`.
var faultfsNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// FaultfsInstance is one entry of GET /v1/faultfs: a control socket in
// the faultfs directory and, when its server answers, what it serves.
type FaultfsInstance struct {
	Name   string        `json:"name"`
	Socket string        `json:"socket"`
	Live   bool          `json:"live"`
	Info   *faultfs.Info `json:"info,omitempty"`
	Rules  int           `json:"rules"`
	Error  string        `json:"error,omitempty"`
}

// faultfsProxy forwards /v1/faultfs/{name}/... to the control socket
// DIR/NAME.sock that `nfslab faultfs mount` serves, so faultfs rules can be
// set and cleared through the daemon (and its socket permissions) as well
// as directly.
type faultfsProxy struct {
	s   *Server
	dir string

	mu         sync.Mutex
	transports map[string]*http.Transport // per socket: pooled connections never cross sockets
}

func (p *faultfsProxy) socket(name string) string { return filepath.Join(p.dir, name+".sock") }

func (p *faultfsProxy) transport(sock string) *http.Transport {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.transports[sock]; ok {
		return t
	}
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	p.transports[sock] = t
	return t
}

func (p *faultfsProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
}

// name validates the {name} path value.
func (p *faultfsProxy) name(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if !faultfsNameRE.MatchString(name) {
		writeJSONError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("faultfs name %q must be 1-64 letters, digits, '.', '_' or '-'", name))
		return "", false
	}
	if _, err := os.Stat(p.socket(name)); err != nil {
		writeJSONError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("no faultfs named %q (no control socket %s; start one with nfslab faultfs mount --name %s)", name, p.socket(name), name))
		return "", false
	}
	return name, true
}

// ServeHTTP proxies one request. Equivalent to:
// `curl --unix-socket DIR/NAME.sock http://faultfs/REST`.
func (p *faultfsProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := p.name(w, r)
	if !ok {
		return
	}
	sock := p.socket(name)
	rest := "/" + r.PathValue("rest")
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "faultfs"
			pr.Out.URL.Path = rest
			pr.Out.URL.RawPath = ""
			pr.Out.Host = "faultfs"
		},
		Transport: p.transport(sock),
		ModifyResponse: func(resp *http.Response) error {
			if r.Method != http.MethodGet && r.Method != http.MethodHead && resp.StatusCode < 300 {
				data, _ := json.Marshal(map[string]any{"name": name, "method": r.Method, "path": rest, "status": resp.StatusCode})
				p.s.Publish(daemonapi.Event{Type: daemonapi.EventFaultfsChanged, Message: fmt.Sprintf("faultfs %s: %s %s", name, r.Method, rest), Data: data})
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeJSONError(w, http.StatusBadGateway, "unavailable",
				fmt.Sprintf("faultfs %s does not answer on %s (its server is gone; nfslab heal --all removes the stale socket and mount): %v", name, sock, err))
		},
		ErrorLog: nil,
	}
	rp.ServeHTTP(w, r)
}

// list answers GET /v1/faultfs: every control socket in the directory,
// with the mount it serves when its server answers.
func (p *faultfsProxy) list(w http.ResponseWriter, r *http.Request) {
	socks, err := filepath.Glob(filepath.Join(p.dir, "*.sock"))
	if err != nil {
		writeError(w, err)
		return
	}
	sort.Strings(socks)
	out := make([]FaultfsInstance, 0, len(socks))
	for _, s := range socks {
		in := FaultfsInstance{Name: strings.TrimSuffix(filepath.Base(s), ".sock"), Socket: s}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		c := &faultfs.Client{HTTP: &http.Client{Transport: p.transport(s)}, Base: "http://faultfs"}
		info, err := c.Info(ctx)
		if err == nil {
			in.Live, in.Info = true, &info
			if rules, err := c.Rules(ctx); err == nil {
				in.Rules = len(rules)
			}
		} else {
			var api *faultfs.APIError
			in.Live = errors.As(err, &api) // it answered, just not /info
			in.Error = err.Error()
		}
		cancel()
		out = append(out, in)
	}
	writeJSON(w, http.StatusOK, out)
}
