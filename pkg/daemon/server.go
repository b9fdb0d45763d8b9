package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nfslab/nfslab/pkg/cleanup"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// DefaultVerifyWindow is how long a fault may match nothing before the
// daemon reports it.
const DefaultVerifyWindow = netfault.DefaultVerifyWindow

// Options configure a Server.
type Options struct {
	Injector netfault.Injector
	Clock    clock.Clock  // nil: clock.Real
	Logger   *slog.Logger // nil: discard
	// Namespaces are network namespaces the daemon manages besides the host
	// namespace (""): swept at start, listed and healed by default.
	Namespaces []string
	// NoHostNamespace leaves the host namespace alone unless a request
	// names it (tests whose daemon must only touch their own namespaces).
	NoHostNamespace bool
	// VerifyWindow is how long counters may stay at zero before
	// fault-matched-nothing; 0 means DefaultVerifyWindow, negative disables
	// the watcher.
	VerifyWindow time.Duration
	// VerifyPoll is how often the watcher reads counters; 0 means 1s.
	VerifyPoll time.Duration
	// JumpInterval is how often the daemon re-asserts nfslab's jumps at the
	// top of the built-in chains when the injector is a netfault.JumpKeeper
	// (a LongLived Manager, whose Apply trusts its cache); 0 means 1s,
	// negative disables.
	JumpInterval time.Duration
	// Verify replaces netfault.Verify (tests).
	Verify VerifyFunc
	// Cleanup, when set, runs at Start after the fault sweep and removes
	// every other object an earlier run left behind: containers, namespace
	// names, faultfs and NFS mounts, the netns NFS server (pkg/cleanup's
	// Sweep without its fault step). Its removals are published as
	// sweep-removed events; its errors as error events, without keeping
	// the daemon from starting.
	Cleanup func(ctx context.Context) (cleanup.Report, error)
	// FaultfsDir holds the faultfs control sockets the daemon proxies to
	// (/v1/faultfs/NAME/... to FaultfsDir/NAME.sock); "" means
	// cleanup.DefaultFaultfsRoot.
	FaultfsDir string
}

// Server is the daemon: an http.Handler plus the fault bookkeeping (expiry
// timers, zero-hit watchers) behind it.
type Server struct {
	inj    netfault.Injector
	clk    clock.Clock
	log    *slog.Logger
	window time.Duration
	poll   time.Duration
	jumps  time.Duration
	verify VerifyFunc
	clean  func(ctx context.Context) (cleanup.Report, error)
	ffs    *faultfsProxy

	mux     *http.ServeMux
	bus     *bus
	metrics *metrics
	started time.Time

	ctx    context.Context // ends at Shutdown; parent of watchers and streams
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	faults     map[string]*tracked
	namespaces map[string]bool
	closing    bool
	httpSrv    *http.Server
}

// tracked is a fault this daemon applied and still owns.
type tracked struct {
	fault  netfault.Fault
	netns  string
	timer  clock.Timer
	cancel context.CancelFunc // ends the watcher
}

var netnsRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// New returns a Server; call Start before serving.
func New(opts Options) (*Server, error) {
	if opts.Injector == nil {
		return nil, errors.New("daemon needs a fault injector")
	}
	for _, ns := range opts.Namespaces {
		if !netnsRE.MatchString(ns) {
			return nil, fmt.Errorf("%w: network namespace name %q is not valid", netfault.ErrInvalid, ns)
		}
	}
	s := &Server{
		inj:        opts.Injector,
		clk:        opts.Clock,
		log:        opts.Logger,
		window:     opts.VerifyWindow,
		poll:       opts.VerifyPoll,
		jumps:      opts.JumpInterval,
		verify:     opts.Verify,
		clean:      opts.Cleanup,
		mux:        http.NewServeMux(),
		bus:        newBus(),
		faults:     map[string]*tracked{},
		namespaces: map[string]bool{},
	}
	if !opts.NoHostNamespace {
		s.namespaces[""] = true
	}
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.window == 0 {
		s.window = DefaultVerifyWindow
	}
	if s.poll <= 0 {
		s.poll = time.Second
	}
	if s.jumps == 0 {
		s.jumps = time.Second
	}
	if s.verify == nil {
		s.verify = netfault.Verify
	}
	for _, ns := range opts.Namespaces {
		s.namespaces[ns] = true
	}
	dir := opts.FaultfsDir
	if dir == "" {
		dir = cleanup.DefaultFaultfsRoot
	}
	s.ffs = &faultfsProxy{s: s, dir: dir, transports: map[string]*http.Transport{}}
	s.started = s.clk.Now()
	m, err := newMetrics(s.scrapeFaults)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /v1/health", s.handleHealth)
	s.mux.HandleFunc("POST /v1/faults", s.handleCreate)
	s.mux.HandleFunc("POST /v1/faults/plan", s.handlePlan)
	s.mux.HandleFunc("GET /v1/faults", s.handleList)
	s.mux.HandleFunc("DELETE /v1/faults", s.handleHealAll)
	s.mux.HandleFunc("DELETE /v1/faults/{id}", s.handleHeal)
	s.mux.HandleFunc("GET /v1/faults/{id}/diagnose", s.handleDiagnose)
	s.mux.HandleFunc("GET /v1/events", s.handleEvents)
	s.mux.Handle("GET /metrics", s.metrics.handler(s.log))
	s.mux.HandleFunc("GET /v1/faultfs", s.ffs.list)
	s.mux.Handle("/v1/faultfs/{name}/{rest...}", s.ffs)
}

// Handle registers another service's endpoint, with http.ServeMux pattern
// syntax ("POST /v1/zeebe"). Patterns under /v1/faults and /v1/faultfs
// are taken.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP serves the daemon API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Publish sends e to every event subscriber and logs it. It fills in Time
// and Seq and returns the event as published.
func (s *Server) Publish(e daemonapi.Event) daemonapi.Event {
	if e.Time.IsZero() {
		e.Time = s.clk.Now()
	}
	e = s.bus.publish(e)
	s.metrics.event(e.Type)
	attrs := []any{"type", e.Type, "seq", e.Seq}
	if e.ID != "" {
		attrs = append(attrs, "id", e.ID)
	}
	if e.Netns != "" {
		attrs = append(attrs, "netns", e.Netns)
	}
	if len(e.IDs) > 0 {
		attrs = append(attrs, "ids", e.IDs)
	}
	if e.Message != "" {
		attrs = append(attrs, "msg", e.Message)
	}
	for _, f := range e.Findings {
		attrs = append(attrs, "finding", f.Cause+": "+f.Detail)
	}
	lvl := slog.LevelInfo
	if e.Type == daemonapi.EventFaultMatchedNothing || e.Type == daemonapi.EventError {
		lvl = slog.LevelWarn
	}
	s.log.Log(context.Background(), lvl, "event", attrs...)
	return e
}

// Start removes what an earlier run left behind in every managed namespace
// (expired faults, orphaned objects, then every other nfslab object, since
// no daemon owns them any more) and publishes what it removed.
func (s *Server) Start(ctx context.Context) error {
	var errs []error
	for _, ns := range s.managed() {
		swept, err := s.inj.Sweep(ctx, ns)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweeping %s: %w", nsName(ns), err))
			continue
		}
		rest, err := s.inj.HealAll(ctx, ns)
		if err != nil {
			errs = append(errs, fmt.Errorf("removing leftovers in %s: %w", nsName(ns), err))
		}
		ids := append(swept, rest...)
		if len(ids) > 0 {
			s.Publish(daemonapi.Event{Type: daemonapi.EventSweepRemoved, Netns: ns, IDs: ids,
				Message: fmt.Sprintf("removed %d leftover fault(s) of an earlier run in %s", len(ids), nsName(ns))})
		}
	}
	if s.clean != nil {
		s.sweepOthers(ctx)
	}
	if jk, ok := s.inj.(netfault.JumpKeeper); ok && s.jumps > 0 {
		s.wg.Add(1)
		go s.keepJumps(jk)
	}
	return errors.Join(errs...)
}

// sweepOthers runs the cleanup of everything but faults and publishes what
// each step removed. A container or mount that cannot be removed is
// reported, not fatal: the daemon is still needed to heal faults.
func (s *Server) sweepOthers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep, err := s.clean(ctx)
	for _, st := range rep.Steps {
		if len(st.Removed) == 0 && len(st.Kept) == 0 {
			continue
		}
		data, _ := json.Marshal(st)
		e := daemonapi.Event{Type: daemonapi.EventSweepRemoved, IDs: st.Removed, Data: data,
			Message: fmt.Sprintf("removed %d leftover %s object(s) of an earlier run", len(st.Removed), st.Step)}
		if len(st.Kept) > 0 {
			e.Message += fmt.Sprintf("; kept %d in use: %s", len(st.Kept), strings.Join(st.Kept, "; "))
		}
		s.Publish(e)
	}
	if err != nil {
		s.Publish(daemonapi.Event{Type: daemonapi.EventError, Message: fmt.Sprintf("removing leftovers at start: %v", err)})
	}
}

// keepJumps moves nfslab's jumps back to the top of the built-in chains
// when another tool inserted above them: a long-lived injector's Apply
// trusts its cache instead of checking on every call.
func (s *Server) keepJumps(jk netfault.JumpKeeper) {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.clk.After(s.jumps):
		}
		for _, ns := range s.managed() {
			ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			err := jk.EnsureJumps(ctx, ns)
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("re-asserting nfslab's jumps", "netns", ns, "err", err)
			}
		}
	}
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv := s.httpSrv
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops serving, ends watchers and event streams, and heals every
// fault this daemon applied. It returns the IDs it healed.
func (s *Server) Shutdown(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	s.closing = true
	srv := s.httpSrv
	s.mu.Unlock()
	s.cancel()
	var errs []error
	if srv != nil {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping http server: %w", err))
		}
	}
	s.mu.Lock()
	all := make([]*tracked, 0, len(s.faults))
	for id, t := range s.faults {
		t.timer.Stop()
		t.cancel()
		all = append(all, t)
		delete(s.faults, id)
	}
	s.mu.Unlock()
	var healed []string
	for _, t := range all {
		err := s.inj.Heal(ctx, t.netns, t.fault.ID)
		if err != nil && !errors.Is(err, netfault.ErrNotFound) {
			errs = append(errs, fmt.Errorf("healing fault %s at shutdown: %w", t.fault.ID, err))
			continue
		}
		healed = append(healed, t.fault.ID)
		s.Publish(daemonapi.Event{Type: daemonapi.EventFaultHealed, ID: t.fault.ID, Netns: t.netns, Message: "healed at shutdown"})
	}
	sort.Strings(healed)
	s.wg.Wait()
	s.ffs.close()
	// A long-lived injector keeps empty chains for the next Apply; at exit
	// they go too.
	if c, ok := s.inj.(io.Closer); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing fault injector: %w", err))
		}
	}
	return healed, errors.Join(errs...)
}

// managed returns the namespaces the daemon looks at by default: the host
// namespace, the configured ones and those it applied faults in.
func (s *Server) managed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.namespaces))
	for ns := range s.namespaces {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

func nsName(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	n := len(s.faults)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, daemonapi.Health{PID: os.Getpid(), Started: s.started, Namespaces: s.managed(), Faults: n})
}

// maxBody bounds every request body the daemon reads.
const maxBody = 1 << 16

// decodeBody decodes the request body into v strictly: one JSON value of
// at most maxBody bytes, no unknown fields, nothing after it. Every handler
// that reads a body goes through here; a bad body wraps ErrInvalid (400).
func decodeBody(r *http.Request, what string, v any) error {
	body := http.MaxBytesReader(nil, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: decoding %s: %v", netfault.ErrInvalid, what, err)
	}
	var tok json.RawMessage
	if err := dec.Decode(&tok); !errors.Is(err, io.EOF) {
		rest, _ := io.ReadAll(io.LimitReader(io.MultiReader(dec.Buffered(), body), 40))
		if err == nil {
			rest = tok
		}
		return fmt.Errorf("%w: decoding %s: trailing data %q after the JSON value", netfault.ErrInvalid, what, bytes.TrimSpace(rest))
	}
	return nil
}

func decodeSpec(r *http.Request) (netfault.Spec, error) {
	var spec netfault.Spec
	if err := decodeBody(r, "fault spec", &spec); err != nil {
		return spec, err
	}
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return spec, err
	}
	return spec, nil
}

func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request) {
	spec, err := decodeSpec(r)
	if err != nil {
		writeError(w, err)
		return
	}
	p, err := s.inj.Plan(r.Context(), spec)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	spec, err := decodeSpec(r)
	if err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "daemon is shutting down")
		return
	}
	// A client that hangs up must not leave an applied fault untracked.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
	defer cancel()
	t0 := time.Now()
	f, err := s.inj.Apply(ctx, spec)
	s.metrics.observeApply(time.Since(t0), err)
	if err != nil {
		s.log.Warn("apply failed", "spec", spec, "err", err)
		writeError(w, fmt.Errorf("applying %s fault to %s: %w", spec.Kind, spec.Dst, err))
		return
	}
	if f.Spec.Netns == "" {
		f.Spec.Netns = spec.Netns
	}
	f.Notes = append(f.Notes, fmt.Sprintf("the daemon heals it at %s", f.Expires.Format(time.RFC3339)))
	if spec.KernelExpiry() {
		f.Notes = append(f.Notes, "the kernel stops matching it at the same time (-m time --datestop)")
	}
	s.track(f, spec.Netns)
	s.Publish(daemonapi.Event{Type: daemonapi.EventFaultApplied, ID: f.ID, Netns: spec.Netns, Fault: &f})
	writeJSON(w, http.StatusCreated, f)
}

// track arms the expiry timer and the zero-hit watcher of a new fault.
func (s *Server) track(f netfault.Fault, ns string) {
	expires := f.Expires
	if expires.IsZero() {
		expires = f.Created.Add(f.Spec.For)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	t := &tracked{fault: f, netns: ns, cancel: cancel}
	s.mu.Lock()
	s.faults[f.ID] = t
	s.namespaces[ns] = true
	t.timer = s.clk.AfterFunc(expires.Sub(s.clk.Now()), func() { s.expire(f.ID) })
	watch := s.window > 0 && f.Spec.Counted()
	if watch {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if watch {
		go s.watch(ctx, f.ID, ns)
	}
}

// untrack forgets a fault and stops its timer and watcher; it reports
// whether the daemon owned it.
func (s *Server) untrack(id string) (*tracked, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.faults[id]
	if !ok {
		return nil, false
	}
	delete(s.faults, id)
	t.timer.Stop()
	t.cancel()
	return t, true
}

func (s *Server) expire(id string) {
	s.mu.Lock()
	t, ok := s.faults[id]
	closing := s.closing
	s.mu.Unlock()
	if !ok || closing {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.inj.Heal(ctx, t.netns, id)
	if err != nil && !errors.Is(err, netfault.ErrNotFound) {
		s.Publish(daemonapi.Event{Type: daemonapi.EventError, ID: id, Netns: t.netns, Message: fmt.Sprintf("healing expired fault: %v", err)})
		// Keep it tracked: Shutdown or a later heal retries.
		return
	}
	if _, ok := s.untrack(id); !ok {
		return // healed by a request meanwhile; that request reported it
	}
	s.Publish(daemonapi.Event{Type: daemonapi.EventFaultExpired, ID: id, Netns: t.netns,
		Message: fmt.Sprintf("lifetime %v ended", t.fault.Spec.For)})
}

func (s *Server) watch(ctx context.Context, id, ns string) {
	defer s.wg.Done()
	v, err := s.verify(ctx, s.inj, s.clk, ns, id, s.window, s.poll)
	if ctx.Err() != nil {
		return // healed or shutting down: nothing to report
	}
	switch {
	case err != nil && errors.Is(err, netfault.ErrNotFound):
	case err != nil:
		s.Publish(daemonapi.Event{Type: daemonapi.EventError, ID: id, Netns: ns, Message: fmt.Sprintf("verifying fault: %v", err)})
	case v.Bit:
		s.Publish(daemonapi.Event{Type: daemonapi.EventFaultFirstHit, ID: id, Netns: ns, Packets: v.Packets, FirstHit: v.FirstHit,
			Message: fmt.Sprintf("bites: %d packets after %v", v.Packets, v.FirstHit)})
	default:
		s.Publish(daemonapi.Event{Type: daemonapi.EventFaultMatchedNothing, ID: id, Netns: ns, Findings: v.Findings,
			Message: fmt.Sprintf("no packet matched in %v", s.window)})
	}
}

// netnsParam returns ?netns= and whether it was given.
func netnsParam(r *http.Request) (string, bool, error) {
	q := r.URL.Query()
	if !q.Has("netns") {
		return "", false, nil
	}
	ns := q.Get("netns")
	if ns != "" && !netnsRE.MatchString(ns) {
		return "", true, fmt.Errorf("%w: network namespace name %q is not valid", netfault.ErrInvalid, ns)
	}
	return ns, true, nil
}

// scope is the namespaces a request acts in: ?netns= or every managed one.
func (s *Server) scope(r *http.Request) ([]string, error) {
	ns, ok, err := netnsParam(r)
	if err != nil {
		return nil, err
	}
	if ok {
		return []string{ns}, nil
	}
	return s.managed(), nil
}

func (s *Server) listAll(ctx context.Context, nss []string) ([]netfault.Fault, error) {
	var out []netfault.Fault
	for _, ns := range nss {
		fs, err := s.inj.List(ctx, ns)
		if err != nil {
			return nil, fmt.Errorf("listing faults in %s: %w", nsName(ns), err)
		}
		for _, f := range fs {
			if f.Spec.Netns == "" {
				f.Spec.Netns = ns
			}
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	nss, err := s.scope(r)
	if err != nil {
		writeError(w, err)
		return
	}
	fs, err := s.listAll(r.Context(), nss)
	if err != nil {
		writeError(w, err)
		return
	}
	if fs == nil {
		fs = []netfault.Fault{}
	}
	writeJSON(w, http.StatusOK, fs)
}

func (s *Server) handleHeal(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ns, given, err := netnsParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	t, tracked := s.faults[id]
	if tracked && !given {
		ns = t.netns
	}
	s.mu.Unlock()
	t0 := time.Now()
	err = s.inj.Heal(r.Context(), ns, id)
	if errors.Is(err, netfault.ErrNotFound) && tracked && t.netns != ns {
		// The user named no (or the wrong) namespace, but the daemon knows
		// where it applied this fault.
		ns = t.netns
		err = s.inj.Heal(r.Context(), ns, id)
	}
	s.metrics.observeHeal(time.Since(t0), err)
	if err != nil {
		if errors.Is(err, netfault.ErrNotFound) {
			// Healed meanwhile by its timer, or never ours.
			s.untrack(id)
			writeJSONError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no fault with ID %q in %s", id, nsName(ns)))
			return
		}
		writeError(w, fmt.Errorf("healing fault %s: %w", id, err))
		return
	}
	s.untrack(id)
	s.Publish(daemonapi.Event{Type: daemonapi.EventFaultHealed, ID: id, Netns: ns})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleHealAll(w http.ResponseWriter, r *http.Request) {
	nss, err := s.scope(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ids := []string{}
	var errs []error
	for _, ns := range nss {
		got, err := s.inj.HealAll(r.Context(), ns)
		if err != nil {
			errs = append(errs, fmt.Errorf("healing all faults in %s: %w", nsName(ns), err))
		}
		for _, id := range got {
			s.untrack(id)
			s.Publish(daemonapi.Event{Type: daemonapi.EventFaultHealed, ID: id, Netns: ns})
		}
		ids = append(ids, got...)
	}
	// Forget faults that were in these namespaces but are gone already.
	s.mu.Lock()
	var gone []string
	for id, t := range s.faults {
		for _, ns := range nss {
			if t.netns == ns {
				gone = append(gone, id)
			}
		}
	}
	s.mu.Unlock()
	for _, id := range gone {
		s.untrack(id)
	}
	if err := errors.Join(errs...); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, daemonapi.HealAllResponse{IDs: ids})
}

func (s *Server) handleDiagnose(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ns, given, err := netnsParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	if t, ok := s.faults[id]; ok && !given {
		ns = t.netns
	}
	s.mu.Unlock()
	fnd, err := s.inj.Diagnose(r.Context(), ns, id)
	if err != nil {
		writeError(w, err)
		return
	}
	if fnd == nil {
		fnd = []netfault.Finding{}
	}
	writeJSON(w, http.StatusOK, fnd)
}

// handleEvents streams events as newline-delimited JSON until the client
// goes away or the daemon stops. ?since=SEQ first replays the recent events
// after SEQ.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	var since uint64
	replay := false
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, fmt.Errorf("%w: since %q is not an event sequence number", netfault.ErrInvalid, v))
			return
		}
		since, replay = n, true
	}
	ch, done := s.bus.subscribe(since, replay)
	defer done()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case e := <-ch:
			if err := enc.Encode(e); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, daemonapi.ErrorResponse{Error: msg, Code: code})
}

// writeError maps an error to its HTTP status: this is the boundary where
// netfault's sentinel errors become status codes.
func writeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, netfault.ErrInvalid):
		writeJSONError(w, http.StatusBadRequest, "invalid", err.Error())
	case errors.Is(err, netfault.ErrNotFound):
		writeJSONError(w, http.StatusNotFound, "not_found", err.Error())
	default:
		writeJSONError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}
