package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

// NFSServerFaultPattern is the endpoint NFSServerFaults serves.
const NFSServerFaultPattern = "POST " + daemonapi.NFSServerFaultPath

// NFSServerFaultFunc switches fault on or off on the netns server named
// netns (cmd/nfslab wires nfsserver.NetnsServer.Fault); target is eio's.
type NFSServerFaultFunc func(ctx context.Context, netns string, fault nfsserver.ServerFault, on bool, target nfsserver.FaultTarget) error

// Events of the server faults.
const (
	EventServerFaultOn  = "nfs-server-fault-on"
	EventServerFaultOff = "nfs-server-fault-off"
)

// NFSServerFaults returns the handler of NFSServerFaultPattern. A fault
// with For is switched off by a timer on the daemon's clock; if the daemon
// dies first, the start-up cleanup removes nfslab's netns server (and with
// it every server fault).
func NFSServerFaults(s *Server, fn NFSServerFaultFunc) http.Handler {
	return &serverFaults{s: s, fn: fn, timers: map[string]func() bool{}}
}

type serverFaults struct {
	s  *Server
	fn NFSServerFaultFunc

	mu     sync.Mutex
	timers map[string]func() bool // netns/fault -> stop of its pending off
}

func (h *serverFaults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req daemonapi.NFSServerFaultRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("decoding the request: %v", err))
		return
	}
	if req.Netns == "" {
		req.Netns = nfsserver.DefaultNetns
	}
	f, err := nfsserver.ParseServerFault(req.Fault)
	target := nfsserver.FaultTarget{Path: req.Path, Blocks: req.Blocks}
	if err == nil && (req.On || !target.IsZero()) {
		err = target.Validate(f) // off needs no target: eio off mends the whole device
	}
	switch {
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	case !netnsRE.MatchString(req.Netns):
		writeJSONError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("network namespace name %q is not valid", req.Netns))
		return
	case req.For < 0 || (req.For > 0 && (!req.On || f == nfsserver.FaultExpireClients)):
		writeJSONError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("for %s applies to switching stop, unexport, fill or eio on", req.For))
		return
	}
	key := req.Netns + "/" + req.Fault
	h.mu.Lock()
	if stop := h.timers[key]; stop != nil {
		stop() // a new request for the same fault replaces its expiry
		delete(h.timers, key)
	}
	h.mu.Unlock()
	if err := h.fn(r.Context(), req.Netns, f, req.On, target); err != nil {
		switch {
		case errors.Is(err, nfsserver.ErrInvalid):
			writeJSONError(w, http.StatusBadRequest, "invalid", err.Error())
		case errors.Is(err, nfsserver.ErrNotRunning):
			writeJSONError(w, http.StatusNotFound, "not_found", err.Error())
		default:
			writeJSONError(w, http.StatusInternalServerError, "internal", err.Error())
		}
		return
	}
	resp := daemonapi.NFSServerFaultResponse{Netns: req.Netns, Fault: req.Fault, On: req.On}
	h.publish(req.Netns, req.Fault, req.On, "")
	if req.For > 0 {
		resp.Until = h.s.clk.Now().Add(req.For.D())
		t := h.s.clk.AfterFunc(req.For.D(), func() { h.expire(key, req.Netns, f) })
		h.mu.Lock()
		h.timers[key] = t.Stop
		h.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, resp)
}

// expire switches a fault off when its For has passed.
func (h *serverFaults) expire(key, netns string, f nfsserver.ServerFault) {
	h.mu.Lock()
	delete(h.timers, key)
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(h.s.ctx, time.Minute)
	defer cancel()
	if err := h.fn(ctx, netns, f, false, nfsserver.FaultTarget{}); err != nil {
		h.publish(netns, string(f), false, err.Error())
		return
	}
	h.publish(netns, string(f), false, "")
}

func (h *serverFaults) publish(netns, fault string, on bool, errText string) {
	e := daemonapi.Event{Type: EventServerFaultOn, Netns: netns, ID: "nfs-server/" + fault}
	if !on {
		e.Type = EventServerFaultOff
	}
	if errText != "" {
		e.Type, e.Message = daemonapi.EventError, "switching "+fault+" off: "+errText
	}
	h.s.Publish(e)
}
