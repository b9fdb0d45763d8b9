package faultfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Controller is what the HTTP API drives. *FS and *Engine satisfy it.
type Controller interface {
	Set(Rule) (Rule, error)
	Clear(id string) error
	ClearAll() []string
	Rules() []Rule
	Stats() []RuleStats
}

// cacheDropper is implemented by *FS (not by a bare Engine).
type cacheDropper interface {
	DropCacheGlob(glob string) ([]string, error)
}

// Info describes a mounted filesystem (GET /info).
type Info struct {
	Backing    string `json:"backing"`
	Mountpoint string `json:"mountpoint"`
	KeepCache  bool   `json:"keep_cache"`
	DirectIO   bool   `json:"direct_io"`
	Writeback  bool   `json:"writeback"`
}

type infoer interface{ info() Info }

// Handler serves the rule API over HTTP/JSON:
//
//	GET    /rules          list rules                      200 [Rule]
//	POST   /rules          add or replace (same id) a rule  201 Rule, 400 {"error"}
//	DELETE /rules          clear all rules                 200 {"cleared":[id]}
//	DELETE /rules/{id}     clear one rule                  204, 404 {"error"}
//	GET    /stats          per-rule counters               200 [RuleStats]
//	POST   /cache/drop     {"path":glob} drop page caches  200 {"dropped":[path]}
//	GET    /info           mount description               200 Info
//
// Mount it under a prefix with http.StripPrefix.
func Handler(c Controller) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rules", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Rules())
	})
	mux.HandleFunc("POST /rules", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("reading rule: %w", err))
			return
		}
		rule, err := UnmarshalRule(body)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		rule, err = c.Set(rule)
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusCreated, rule)
	})
	mux.HandleFunc("DELETE /rules", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]string{"cleared": c.ClearAll()})
	})
	mux.HandleFunc("DELETE /rules/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := c.Clear(r.PathValue("id")); err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Stats())
	})
	mux.HandleFunc("POST /cache/drop", func(w http.ResponseWriter, r *http.Request) {
		d, ok := c.(cacheDropper)
		if !ok {
			writeErr(w, http.StatusNotImplemented, errors.New("this controller has no page cache to drop"))
			return
		}
		var req struct {
			Path string `json:"path"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("%w: %v", ErrInvalid, err))
			return
		}
		dropped, err := d.DropCacheGlob(req.Path)
		if err != nil {
			writeErr(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string][]string{"dropped": dropped})
	})
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, _ *http.Request) {
		i, ok := c.(infoer)
		if !ok {
			writeErr(w, http.StatusNotImplemented, errors.New("not a mounted filesystem"))
			return
		}
		writeJSON(w, http.StatusOK, i.info())
	})
	return mux
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// Client talks to a Handler, usually over a unix socket.
type Client struct {
	HTTP *http.Client
	Base string // "http://faultfs" for a unix socket
}

// NewUnixClient returns a client for the control socket at path.
func NewUnixClient(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}, Base: "http://faultfs"}
}

// APIError is an error answer of the server. Is matches ErrInvalid (400)
// and ErrNotFound (404) so callers map them to exit codes.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Is maps HTTP statuses back to the package's sentinel errors.
func (e *APIError) Is(target error) bool {
	return (target == ErrInvalid && e.Status == http.StatusBadRequest) ||
		(target == ErrNotFound && e.Status == http.StatusNotFound)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+path, body)
	if err != nil {
		return fmt.Errorf("building request %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
		}
	}
	return nil
}

// Set adds or replaces a rule and returns it as stored.
func (c *Client) Set(ctx context.Context, r Rule) (Rule, error) {
	var out Rule
	err := c.do(ctx, http.MethodPost, "/rules", r, &out)
	return out, err
}

// Clear removes one rule.
func (c *Client) Clear(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/rules/"+id, nil, nil)
}

// ClearAll removes every rule and returns their IDs.
func (c *Client) ClearAll(ctx context.Context) ([]string, error) {
	var out struct {
		Cleared []string `json:"cleared"`
	}
	err := c.do(ctx, http.MethodDelete, "/rules", nil, &out)
	return out.Cleared, err
}

// Rules lists the rules.
func (c *Client) Rules(ctx context.Context) ([]Rule, error) {
	var out []Rule
	err := c.do(ctx, http.MethodGet, "/rules", nil, &out)
	return out, err
}

// Stats returns per-rule counters.
func (c *Client) Stats(ctx context.Context) ([]RuleStats, error) {
	var out []RuleStats
	err := c.do(ctx, http.MethodGet, "/stats", nil, &out)
	return out, err
}

// DropCache drops the page cache of files matching glob.
func (c *Client) DropCache(ctx context.Context, glob string) ([]string, error) {
	var out struct {
		Dropped []string `json:"dropped"`
	}
	err := c.do(ctx, http.MethodPost, "/cache/drop", map[string]string{"path": glob}, &out)
	return out.Dropped, err
}

// Info describes the mount.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var out Info
	err := c.do(ctx, http.MethodGet, "/info", nil, &out)
	return out, err
}
