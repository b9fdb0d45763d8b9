package chaosmesh

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/faultfs"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// ErrNothingMaps is returned (with the Result and its Unmapped list) when
// no step of the timeline becomes a Chaos Mesh object.
var ErrNothingMaps = errors.New("nothing in the scenario's timeline maps to Chaos Mesh")

// OneShotDeadline is the deadline of the templates whose action happens
// once (pod-kill, container-kill): long enough for the controller to act,
// and the slot the timeline gives them.
const OneShotDeadline = 5 * time.Second

// Unmapped is a scenario item Chaos Mesh cannot express, or, with
// Partial, the part of an exported item it cannot.
type Unmapped struct {
	// Path is where the item is in the scenario: "timeline[0] (drop-80)",
	// "expectations[2]", "storage.options".
	Path string
	// What is the item or the part of it: "port 2049", "rate-below".
	What string
	// Why says why, and what to do instead.
	Why string
	// Partial: the item is exported without this part.
	Partial bool
}

func (u Unmapped) String() string {
	if u.Partial {
		return fmt.Sprintf("%s: exported without %s: %s", u.Path, u.What, u.Why)
	}
	return fmt.Sprintf("%s: %s: %s", u.Path, u.What, u.Why)
}

// Result is the exported scenario.
type Result struct {
	// Workflow holds the timeline; nil with ErrNothingMaps.
	Workflow *Workflow
	// Mapped says, for each exported step, what it became, in timeline
	// order: "timeline[0] (drop-80): NetworkChaos loss 80% to 10.0.0.5, 40s-50s".
	Mapped []string
	// Unmapped lists, in scenario order, everything not (fully) exported.
	Unmapped []Unmapped
}

// item is one template on the timeline, [start, end).
type item struct {
	idx        int
	start, end time.Duration
	tmpl       Template
	what       string
}

type exporter struct {
	sc       *scenario.Scenario
	o        Options
	byID     map[string]int
	starts   map[int]startAt
	items    []item
	unmapped map[int][]Unmapped // timeline index -> entries, kept in order
	mapped   map[int][]string
	ended    map[int]int // step index -> index of the step that ends it (heal, clear, unpause, restart)
	names    map[string]bool
}

type startAt struct {
	at   time.Duration
	ok   bool
	why  string // when !ok
	note string // an approximation, when ok
}

// Export turns sc (validated) into a Chaos Mesh Workflow for the pods o
// selects. Bad options wrap ErrInvalid; a timeline of which nothing maps
// gives the Result (with its Unmapped list) and ErrNothingMaps.
func Export(sc *scenario.Scenario, opts Options) (*Result, error) {
	o, err := opts.withDefaults(sc.Metadata.Name)
	if err != nil {
		return nil, err
	}
	if len(o.Selector) == 0 {
		return nil, fmt.Errorf("%w: selector is required: the labels of the pods under test, e.g. app=zeebe (an empty selector would select every pod of namespace %s)", ErrInvalid, o.Namespace)
	}
	e := &exporter{sc: sc, o: o, byID: map[string]int{}, starts: map[int]startAt{},
		unmapped: map[int][]Unmapped{}, mapped: map[int][]string{}, ended: map[int]int{}, names: map[string]bool{}}
	for i, st := range sc.Timeline {
		e.byID[st.ID] = i
	}
	for id := range o.At {
		i, ok := e.byID[id]
		if !ok {
			return nil, fmt.Errorf("%w: at %s: the timeline has no step %q", ErrInvalid, id, id)
		}
		if sc.Timeline[i].On == "" {
			return nil, fmt.Errorf("%w: at %s: step %q starts at %v already; --at pins steps that start on an event", ErrInvalid, id, id, sc.Timeline[i].At)
		}
	}
	for i := range sc.Timeline {
		if err := e.step(i); err != nil {
			return nil, err
		}
	}
	for i := range sc.Timeline {
		e.ender(i)
	}
	for _, it := range e.items {
		e.mapped[it.idx] = append(e.mapped[it.idx], fmt.Sprintf("-> template %s: %s, %v to %v", it.tmpl.Name, it.what, it.start, it.end))
	}
	res := &Result{}
	for i, st := range sc.Timeline {
		for _, m := range e.mapped[i] {
			res.Mapped = append(res.Mapped, fmt.Sprintf("timeline[%d] (%s) %s", i, st.ID, m))
		}
		res.Unmapped = append(res.Unmapped, e.unmapped[i]...)
	}
	res.Unmapped = append(res.Unmapped, e.rest()...)
	if len(e.items) == 0 {
		return res, ErrNothingMaps
	}
	res.Workflow = e.workflow()
	return res, nil
}

func (e *exporter) path(i int) string {
	return fmt.Sprintf("timeline[%d] (%s)", i, e.sc.Timeline[i].ID)
}

func (e *exporter) skip(i int, what, why string) {
	e.unmapped[i] = append(e.unmapped[i], Unmapped{Path: e.path(i), What: what, Why: why})
}

func (e *exporter) partial(i int, what, why string) {
	e.unmapped[i] = append(e.unmapped[i], Unmapped{Path: e.path(i), What: what, Why: why, Partial: true})
}

// start resolves when step i starts, from the timeline's start.
func (e *exporter) start(i int) startAt {
	if s, ok := e.starts[i]; ok {
		return s
	}
	e.starts[i] = startAt{why: "its start depends on itself"} // cycles are excluded by Validate
	st := &e.sc.Timeline[i]
	var s startAt
	switch {
	case st.At != nil:
		s = startAt{at: st.At.D(), ok: true}
	case hasKey(e.o.At, st.ID):
		s = startAt{at: e.o.At[st.ID], ok: true, note: fmt.Sprintf("starts at %v (--at) instead of on %s, which Chaos Mesh cannot observe", e.o.At[st.ID], st.On)}
	case strings.HasPrefix(st.On, scenario.EventStepDone), strings.HasPrefix(st.On, scenario.EventFaultFirstHit):
		_, dep, _ := strings.Cut(st.On, ":")
		j := e.byID[dep]
		ds := e.start(j)
		if !ds.ok {
			s = startAt{why: fmt.Sprintf("it starts on %s, and step %q has no time in Chaos Mesh (%s)", st.On, dep, ds.why)}
			break
		}
		at := ds.at
		if strings.HasPrefix(st.On, scenario.EventStepDone) {
			at += e.sc.Timeline[j].For.D()
		} else {
			s.note = fmt.Sprintf("starts when step %q starts instead of on its first hit, which Chaos Mesh cannot observe (under load the first packet hits within milliseconds)", dep)
		}
		s.at, s.ok = at+st.Delay.D(), true
	default:
		s = startAt{why: fmt.Sprintf("it starts on the event %s, which Chaos Mesh cannot observe; pin it to an offset with --at %s=OFFSET", st.On, st.ID)}
	}
	e.starts[i] = s
	return s
}

func hasKey[V any](m map[string]V, k string) bool { _, ok := m[k]; return ok }

// step maps one timeline step (the ones that end others are done in ender).
func (e *exporter) step(i int) error {
	st := &e.sc.Timeline[i]
	for _, f := range unknownFields(*st, stepFields...) {
		e.partial(i, f, "the Chaos Mesh exporter does not know this field yet")
	}
	switch st.Action {
	case scenario.ActionHeal, scenario.ActionFaultfsClear, scenario.ActionUnpause:
		return nil // in ender, once every fault is known
	case scenario.ActionRestart:
		if e.stopBefore(i) >= 0 {
			return nil // ends a stop: in ender
		}
	}
	s := e.start(i)
	if !s.ok {
		e.skip(i, st.Action, s.why)
		return nil
	}
	if s.note != "" {
		e.partial(i, "its event "+st.On, s.note)
	}
	switch st.Action {
	case scenario.ActionDrop, scenario.ActionReject, scenario.ActionUnreachable, actionDelay, actionLimit:
		spec, what, err := e.network(i, st)
		if err != nil || spec == nil {
			return err
		}
		e.add(i, st.ID, s.at, Template{Type: TypeNetworkChaos, EmbedChaos: &EmbedChaos{NetworkChaos: spec}}, what)
	case scenario.ActionFaultfsSet:
		specs, whats := e.io(i, st)
		for k, spec := range specs {
			name := st.ID
			if len(specs) > 1 {
				name += "-" + string(spec.Action)
			}
			e.add(i, name, s.at, Template{Type: TypeIOChaos, EmbedChaos: &EmbedChaos{IOChaos: spec}}, whats[k])
		}
	case scenario.ActionRestart, scenario.ActionRestartTarget, scenario.ActionKill, scenario.ActionPause, scenario.ActionStop:
		spec, what := e.pod(i, st)
		if spec != nil {
			e.add(i, st.ID, s.at, Template{Type: TypePodChaos, EmbedChaos: &EmbedChaos{PodChaos: spec}}, what)
		}
	case scenario.ActionWait:
		e.add(i, st.ID, s.at, Template{Type: TypeSuspend}, "Suspend")
	default:
		e.skip(i, "action "+st.Action, "the Chaos Mesh exporter has no mapping for this action yet")
	}
	return nil
}

// add records a template starting at start; its end is set now for a step
// with For, for a one-shot action, or later by ender (default: the end of
// the timeline, where nfslab heals what is left).
func (e *exporter) add(i int, name string, start time.Duration, t Template, what string) {
	st := &e.sc.Timeline[i]
	end := e.sc.Duration.D()
	switch {
	case st.For != 0:
		end = start + st.For.D()
	case t.PodChaos != nil && t.PodChaos.Action != PodFailureAction:
		end = start + OneShotDeadline
	}
	t.Name = e.name(name)
	e.items = append(e.items, item{idx: i, start: start, end: end, tmpl: t, what: what})
}

// name makes a unique template name.
func (e *exporter) name(base string) string {
	n := base
	for k := 2; e.names[n]; k++ {
		n = base + "-" + strconv.Itoa(k)
	}
	e.names[n] = true
	return n
}

// stopBefore returns the index of the stop of the same container that a
// restart at i ends, or -1.
func (e *exporter) stopBefore(i int) int {
	st := &e.sc.Timeline[i]
	si := e.start(i)
	if !si.ok {
		return -1
	}
	// before: step k happens before step i on the timeline.
	before := func(k int) bool {
		sk := e.start(k)
		return sk.ok && (sk.at < si.at || sk.at == si.at && k < i)
	}
	stop := -1
	for j := range e.sc.Timeline {
		o := &e.sc.Timeline[j]
		if o.Action == scenario.ActionStop && o.Container == st.Container && before(j) &&
			(stop < 0 || e.start(j).at >= e.start(stop).at) {
			stop = j
		}
	}
	if stop < 0 {
		return -1
	}
	// A restart between that stop and this one ended it already.
	for k := range e.sc.Timeline {
		o := &e.sc.Timeline[k]
		if k != i && o.Action == scenario.ActionRestart && o.Container == st.Container && before(k) && e.start(k).at >= e.start(stop).at {
			return -1
		}
	}
	return stop
}

// ender maps the steps that end others: heal and faultfs-clear end network
// faults and faultfs rules, unpause a pause, restart a stop.
func (e *exporter) ender(i int) {
	st := &e.sc.Timeline[i]
	var ends func(o *scenario.Step) bool
	switch st.Action {
	case scenario.ActionHeal:
		ends = func(o *scenario.Step) bool {
			return (st.Ref == "all" || o.ID == st.Ref) && slices.Contains([]string{scenario.ActionDrop, scenario.ActionReject, scenario.ActionUnreachable, actionDelay, actionLimit}, o.Action)
		}
	case scenario.ActionFaultfsClear:
		ends = func(o *scenario.Step) bool {
			return (st.Ref == "all" || o.ID == st.Ref) && o.Action == scenario.ActionFaultfsSet
		}
	case scenario.ActionUnpause:
		ends = func(o *scenario.Step) bool { return o.Action == scenario.ActionPause && o.Container == st.Container }
	case scenario.ActionRestart:
		if e.stopBefore(i) < 0 {
			return
		}
		ends = func(o *scenario.Step) bool { return o.Action == scenario.ActionStop && o.Container == st.Container }
	default:
		return
	}
	s := e.start(i)
	if !s.ok {
		e.skip(i, st.Action, s.why)
		return
	}
	n := 0
	for k := range e.items {
		it := &e.items[k]
		o := &e.sc.Timeline[it.idx]
		if !ends(o) || o.For != 0 || it.start > s.at || it.end <= s.at {
			continue
		}
		if prev, ok := e.ended[it.idx]; ok && prev != i {
			continue
		}
		it.end = s.at
		e.ended[it.idx] = i
		n++
		e.mapped[i] = append(e.mapped[i], fmt.Sprintf("-> ends template %s at %v (its deadline)", it.tmpl.Name, s.at))
	}
	if n == 0 {
		e.skip(i, st.Action, "it ends nothing that was exported (see the entries above); Chaos Mesh ends each fault at its template's deadline")
	}
}

// Fields of the scenario types the exporter reads; unknownFields reports
// any other field that is set, so a field added later is listed rather
// than dropped. eio goes only with server-eio, a fault of nfslab's own
// server, which is listed as not exported with its action.
var (
	stepFields    = []string{"id", "at", "on", "delay", "for", "action", "fault", "ref", "container", "faultfs", "drop_cache", "note", "eio"}
	faultFields   = append([]string{"dst", "port", "local_port", "proto", "dir", "prob", "route_type", "netns", "match_original", "in"}, shapeFields...)
	faultfsFields = []string{"ops", "path", "errno", "prob", "latency", "offset", "length"}
)

// unknownFields returns the YAML names of v's fields (inline structs
// included) that are set and not in known.
func unknownFields(v any, known ...string) []string {
	var out []string
	var walk func(rv reflect.Value)
	walk = func(rv reflect.Value) {
		rt := rv.Type()
		for k := 0; k < rt.NumField(); k++ {
			f := rt.Field(k)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			if strings.Contains(opts, "inline") || f.Anonymous && name == "" {
				walk(rv.Field(k))
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if !slices.Contains(known, name) && !rv.Field(k).IsZero() {
				out = append(out, fmt.Sprintf("%s %v", name, reflect.Indirect(rv.Field(k)).Interface()))
			}
		}
	}
	walk(reflect.ValueOf(v))
	return out
}

// network maps drop, reject and unreachable to a NetworkChaos spec; nil
// spec (and no error) when the step is listed as unmapped.
func (e *exporter) network(i int, st *scenario.Step) (*NetworkChaosSpec, string, error) {
	f := st.Fault
	for _, u := range unknownFields(*f, faultFields...) {
		e.partial(i, u, "the Chaos Mesh exporter does not know this field of a fault yet")
	}
	if f.In != "" {
		e.skip(i, st.Action+" inside "+f.In, "the fault runs in the network namespace of a broker or of a partition's leader; Chaos Mesh selects pods by labels, not by Zeebe's topology at run time")
		return nil, "", nil
	}
	spec := &NetworkChaosSpec{PodSelector: e.o.podSelector()}
	var toWhat string
	if scenario.IsRef(f.Dst) {
		ref, err := scenario.ParseRef(f.Dst)
		if err != nil || ref.Kind != scenario.RefNFSServer {
			e.skip(i, st.Action+" to "+f.Dst, "the address is resolved from Zeebe's topology at run time; Chaos Mesh selects pods by labels, not by broker index or partition leadership")
			return nil, "", nil
		}
		switch {
		case len(e.o.ServerSelector) > 0:
			spec.Target = e.o.serverSelector()
			toWhat = "the NFS server pods " + labelsText(e.o.ServerSelector)
		case e.o.ServerAddress != "":
			spec.ExternalTargets = []string{e.o.ServerAddress}
			toWhat = e.o.ServerAddress
		case e.sc.Storage.Server != nil && e.sc.Storage.Server.Kind == scenario.ServerExternal:
			spec.ExternalTargets = []string{e.sc.Storage.Server.Address}
			toWhat = e.sc.Storage.Server.Address
		default:
			kind := "none"
			if e.sc.Storage.Server != nil {
				kind = e.sc.Storage.Server.Kind
			}
			return nil, "", fmt.Errorf("%w: step %q acts on traffic to $nfs-server, and the scenario's server (kind %s) is nfslab's own: give server-address (the NFS server's address as the pods reach it) or server-selector (the labels of its pods)", ErrInvalid, st.ID, kind)
		}
	} else {
		if p, err := (netfault.Spec{Dst: f.Dst}).Prefix(); err == nil && p.Addr().IsLoopback() {
			e.skip(i, st.Action+" to "+f.Dst, "a loopback address is the pod itself; Chaos Mesh shapes the pod's network interface, not lo, and a published port (the seed's localhost pitfall) does not exist in a cluster")
			return nil, "", nil
		}
		spec.ExternalTargets = []string{f.Dst}
		toWhat = f.Dst
	}
	// The spec as nfslab would apply it (default port, proto, dir); the
	// address is a placeholder, the target is set above.
	ns, err := st.NetfaultSpec(func(string) (string, error) { return "192.0.2.1", nil })
	if err != nil {
		return nil, "", fmt.Errorf("step %q: %w", st.ID, err)
	}
	var what string
	shaping := st.Action == actionDelay || st.Action == actionLimit
	switch {
	case shaping:
		var parts [][2]string
		what, parts = shapeSpec(spec, st.Action, ns)
		for _, pt := range parts {
			e.partial(i, pt[0], pt[1])
		}
	case ns.Kind == netfault.KindDrop && ns.Prob > 0 && ns.Prob < 1:
		spec.Action = LossAction
		pct := percentText(ns.Prob)
		spec.Loss = &LossSpec{Loss: pct}
		what = "NetworkChaos loss " + pct + "%"
	case ns.Kind == netfault.KindDrop:
		// drop is the partition's default behaviour: left out, so that a
		// Chaos Mesh older than partitionBehavior takes the object too.
		spec.Action = PartitionAction
		what = "NetworkChaos partition (drop)"
	case ns.Kind == netfault.KindReject:
		spec.Action, spec.PartitionBehavior = PartitionAction, RejectPartitionBehavior
		what = "NetworkChaos partition (reject)"
	default: // unreachable
		spec.Action, spec.PartitionBehavior = PartitionAction, RejectPartitionBehavior
		behavior := "reject"
		if ns.RouteType == netfault.RouteBlackhole {
			spec.PartitionBehavior, behavior = "", "drop"
		}
		what = fmt.Sprintf("NetworkChaos partition (%s)", behavior)
		e.partial(i, "route_type "+string(ns.RouteType), fmt.Sprintf("Chaos Mesh installs no routes; a partition that %ss the traffic stands in for the %s route", behavior, ns.RouteType))
	}
	if ns.IsRule() || shaping {
		switch ns.Dir {
		case netfault.DirIn:
			spec.Direction = DirectionFrom
		case netfault.DirBoth:
			spec.Direction = DirectionBoth
		default:
			spec.Direction = DirectionTo
		}
		// The webhook refuses from/both toward external targets for
		// everything but a partition.
		if spec.Direction != DirectionTo && spec.Action != PartitionAction && spec.Target == nil {
			e.partial(i, "dir "+string(ns.Dir), "Chaos Mesh applies netem toward external targets in direction to only; exported as to")
			spec.Direction = DirectionTo
		}
		if ns.Port != 0 || ns.Proto != "" {
			portText := fmt.Sprintf("%s port %d", ns.Proto, ns.Port)
			if ns.Port == 0 {
				portText = ns.Proto
			}
			e.partial(i, portText, "NetworkChaos selects by address, not by protocol or port: every packet between the pods and "+toWhat+" is affected, not only NFS")
		}
		if ns.LocalPort != 0 {
			e.partial(i, fmt.Sprintf("local_port %d", ns.LocalPort), "a fault on the server's own port: NetworkChaos selects by address, so aim the selector at the server's pods and the external target at the clients")
		}
		if ns.MatchOriginal {
			e.partial(i, "match_original", "Chaos Mesh matches a packet's destination as sent; a DNAT in front of the server is not seen through")
		}
	}
	if f.Netns != "" {
		e.partial(i, "netns "+f.Netns, "the pods of the selector take the place of nfslab's network namespace")
	}
	what += " to " + toWhat
	if spec.Direction != "" && spec.Direction != DirectionTo {
		what += " (direction " + string(spec.Direction) + ")"
	}
	return spec, what, nil
}

// percentText writes p in (0, 1) as Chaos Mesh's percentage string.
func percentText(p float64) string {
	return strconv.FormatFloat(math.Round(p*100*1000)/1000, 'f', -1, 64)
}

func labelsText(l map[string]string) string {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range l {
			if !yield(k) {
				return
			}
		}
	})
	parts := make([]string, len(keys))
	for k, key := range keys {
		parts[k] = key + "=" + l[key]
	}
	return strings.Join(parts, ",")
}

// ioMethods maps faultfs operations to IOChaos methods; "any" is every
// method (no list).
var ioMethods = map[string]IoMethod{
	"lookup": "lookup", "open": "open", "create": "create", "read": "read",
	"write": "write", "fsync": "fsync", "flush": "flush", "getattr": "getattr",
	"setattr": "setattr", "unlink": "unlink", "rename": "rename", "mkdir": "mkdir",
	"readdir": "readdir", "statfs": "statfs",
}

// io maps a faultfs rule to IOChaos specs: one for the errno (action
// fault), one for the latency (action latency).
func (e *exporter) io(i int, st *scenario.Step) ([]*IOChaosSpec, []string) {
	r := st.Faultfs
	for _, u := range unknownFields(*r, faultfsFields...) {
		e.partial(i, u, "the Chaos Mesh exporter does not know this field of a faultfs rule yet")
	}
	base := IOChaosSpec{
		ContainerSelector: ContainerSelector{PodSelector: e.o.podSelector(), ContainerNames: slices.Clone(e.o.Containers)},
		VolumePath:        e.o.VolumePath,
		Percent:           100,
	}
	var methods []string
	for _, op := range r.Ops {
		if op == string(faultfs.OpAny) {
			base.Methods, methods = nil, nil
			break
		}
		m, ok := ioMethods[op]
		if !ok {
			e.partial(i, "op "+op, "IOChaos has no such method")
			continue
		}
		base.Methods = append(base.Methods, m)
		methods = append(methods, op)
	}
	switch {
	case r.Path == "" || r.Path == "**":
	case strings.Contains(r.Path, "/"):
		base.Path = e.o.VolumePath + "/" + strings.TrimPrefix(r.Path, "/")
	default: // a base name at any depth, as faultfs matches it
		base.Path = e.o.VolumePath + "/**/" + r.Path
	}
	if r.Prob > 0 && r.Prob < 1 {
		pct := math.Round(r.Prob * 100)
		if pct < 1 {
			pct = 1
		}
		if math.Abs(pct-r.Prob*100) > 1e-9 {
			e.partial(i, fmt.Sprintf("prob %v", r.Prob), fmt.Sprintf("IOChaos takes a whole percentage: %v%%", pct))
		}
		base.Percent = int(pct)
	}
	if r.Offset != 0 || r.Length != 0 {
		e.partial(i, fmt.Sprintf("the byte range (offset %v, length %v)", r.Offset, r.Length), "IOChaos faults whole operations on a file, not a byte range: every matching operation on the file is hit")
	}
	scope := "on " + e.o.VolumePath
	if base.Path != "" {
		scope = "on " + base.Path
	}
	if len(methods) > 0 {
		scope = strings.Join(methods, ",") + " " + scope
	}
	var specs []*IOChaosSpec
	var whats []string
	if r.Latency != 0 {
		s := base
		s.Methods = slices.Clone(base.Methods)
		s.Action, s.Delay = IoLatency, time.Duration(r.Latency).String()
		specs = append(specs, &s)
		whats = append(whats, fmt.Sprintf("IOChaos latency %s %d%% %s", s.Delay, s.Percent, scope))
	}
	if r.Errno != "" {
		errno, err := faultfs.ParseErrno(r.Errno)
		if err == nil && errno != 0 {
			s := base
			s.Methods = slices.Clone(base.Methods)
			s.Action, s.Errno = IoFaults, uint32(errno)
			specs = append(specs, &s)
			whats = append(whats, fmt.Sprintf("IOChaos fault %s (errno %d) %d%% %s", errno, uint32(errno), s.Percent, scope))
		}
	}
	if len(specs) == 2 {
		e.partial(i, "latency and errno together", "exported as two IOChaos; Chaos Mesh draws their probabilities independently, faultfs delays then fails the same operation")
	}
	return specs, whats
}

// pod maps the target controls to a PodChaos spec.
func (e *exporter) pod(i int, st *scenario.Step) (*PodChaosSpec, string) {
	spec := &PodChaosSpec{ContainerSelector: ContainerSelector{PodSelector: e.o.podSelector()}}
	var what string
	switch st.Action {
	case scenario.ActionRestart, scenario.ActionRestartTarget:
		spec.Action = PodKillAction
		what = "PodChaos pod-kill (its controller starts it again)"
	case scenario.ActionKill:
		if len(e.o.Containers) == 0 {
			e.skip(i, st.Action, "container-kill needs the container's name: give container NAME")
			return nil, ""
		}
		spec.Action, spec.ContainerNames = ContainerKillAction, slices.Clone(e.o.Containers)
		what = "PodChaos container-kill " + strings.Join(e.o.Containers, ",")
	case scenario.ActionPause:
		spec.Action = PodFailureAction
		what = "PodChaos pod-failure"
		e.partial(i, "the freeze (SIGSTOP)", "Chaos Mesh cannot freeze a pod; pod-failure makes it unavailable, and its containers start afresh (a replay) at the end instead of resuming")
	case scenario.ActionStop:
		spec.Action = PodFailureAction
		what = "PodChaos pod-failure"
		e.partial(i, "the stop (SIGTERM)", "Chaos Mesh cannot keep a container stopped; pod-failure makes the pod unavailable until its deadline")
	}
	if st.Container != "" {
		e.partial(i, "container "+st.Container, "the pods of the selector take the place of this broker; select its pod alone with selector statefulset.kubernetes.io/pod-name=NAME")
	}
	if st.DropCache {
		e.partial(i, "drop_cache", "Chaos Mesh cannot drop the node's page cache; a pod started again on the same node may replay from cached pages instead of from the NFS server")
	}
	return spec, what + " of " + labelsText(e.o.Selector) + " in " + e.o.Namespace
}

// rest lists what is not in the timeline: expectations, detectors,
// rollbacks, and the lab around the experiment.
func (e *exporter) rest() []Unmapped {
	sc := e.sc
	var out []Unmapped
	if sc.Storage.Options != "" {
		out = append(out, Unmapped{Path: "storage.options", What: sc.Storage.Options,
			Why: "Chaos Mesh does not mount; give these as the PersistentVolume's mountOptions, they decide whether a fault gives errors (soft) or hangs (hard)"})
	}
	if sv := sc.Storage.Server; sv != nil {
		out = append(out, Unmapped{Path: "storage.server", What: "kind " + sv.Kind,
			Why: "the NFS server is yours in the cluster or outside it; nfslab's server is not exported (server-address or server-selector name it)"})
	}
	if sc.Storage.Kind == scenario.StorageFaultfs {
		out = append(out, Unmapped{Path: "storage.kind", What: "faultfs",
			Why: "the faultfs rules become IOChaos on the volume at " + e.o.VolumePath + "; the FUSE filesystem itself is nfslab's"})
	}
	out = append(out, Unmapped{Path: "target", What: "kind " + sc.Target.Kind,
		Why: "nfslab does not deploy the workload in a cluster; the pods of the selector are the target"})
	if sc.Load.Kind != "" && sc.Load.Kind != scenario.LoadNone {
		out = append(out, Unmapped{Path: "load", What: "kind " + sc.Load.Kind,
			Why: "nfslab does not drive load in a cluster; run your own load (e.g. Zeebe's benchmark starter) during the Workflow"})
	}
	for k, d := range sc.Detectors {
		out = append(out, Unmapped{Path: fmt.Sprintf("detectors[%d]", k), What: d.Name,
			Why: "Chaos Mesh does not read logs; watch the pods' logs for " + strconv.Quote(d.Pattern)})
	}
	for k, x := range sc.Expectations {
		name := x.Kind
		if x.Name != "" {
			name = fmt.Sprintf("%s %q", x.Kind, x.Name)
		}
		out = append(out, Unmapped{Path: fmt.Sprintf("expectations[%d]", k), What: name, Why: expectationWhy(x)})
	}
	for k, r := range sc.Rollbacks {
		out = append(out, Unmapped{Path: fmt.Sprintf("rollbacks[%d] (%s)", k, r.ID), What: r.Action,
			Why: "Chaos Mesh recovers its own faults at each template's deadline and when the Workflow is deleted; other rollback actions are nfslab's"})
	}
	return out
}

func expectationWhy(x scenario.Expectation) string {
	switch x.Kind {
	case scenario.ExpectDetectorFires, scenario.ExpectDetectorAbsent:
		return fmt.Sprintf("a verdict from the probe's or Zeebe's log (detector %s); Chaos Mesh gives no verdicts and reads no logs: check the pods' logs over the window", x.Detector)
	case scenario.ExpectRateBelow, scenario.ExpectRateAbove, scenario.ExpectRecovery:
		return "a verdict on the workload's rate; Chaos Mesh records none: compare your metrics (e.g. Zeebe's processed records per second) with the steady state before the fault"
	case scenario.ExpectErrorsAppear, scenario.ExpectErrorsAbsent:
		return "a verdict on the client errors nfslab's load counts; check your clients' error metrics"
	case scenario.ExpectFaultHits:
		return "nfslab's proof that the fault bit (its packet counters); Chaos Mesh reports whether it injected, not whether any packet matched"
	case scenario.ExpectFaultNoHits:
		why := "nfslab's finding that the fault matched nothing (packet counters)"
		if x.Cause == "localio" {
			why += "; the LOCALIO check (client and server on one kernel bypass the network) is nfslab's own"
		} else if x.Cause != "" {
			why += " with cause " + x.Cause
		}
		return why + "; Chaos Mesh has no counters"
	case scenario.ExpectExitCode:
		return "the exit code of nfslab's target process; in a cluster look at the pod's restarts and termination reason"
	}
	return "Chaos Mesh gives no verdicts"
}

// workflow lays the items out: a Serial entry with a Suspend for each gap,
// and a Parallel for items that overlap, each delayed by its own Suspend.
func (e *exporter) workflow() *Workflow {
	items := slices.Clone(e.items)
	slices.SortStableFunc(items, func(a, b item) int {
		if a.start != b.start {
			return int(a.start - b.start)
		}
		return a.idx - b.idx
	})
	var templates []Template
	entry := Template{Name: e.name(e.o.Name), Type: TypeSerial}
	suspend := func(name string, d time.Duration) string {
		t := Template{Name: e.name(name), Type: TypeSuspend, Deadline: deadline(d)}
		templates = append(templates, t)
		return t.Name
	}
	chaos := func(it item) string {
		t := it.tmpl
		t.Deadline = deadline(it.end - it.start)
		templates = append(templates, t)
		return t.Name
	}
	var cursor time.Duration
	for k := 0; k < len(items); {
		group := []item{items[k]}
		end := items[k].end
		for k++; k < len(items) && items[k].start < end; k++ {
			group = append(group, items[k])
			end = max(end, items[k].end)
		}
		start := group[0].start
		if start > cursor {
			entry.Children = append(entry.Children, suspend("wait-until-"+durationName(start), start-cursor))
		}
		if len(group) == 1 {
			entry.Children = append(entry.Children, chaos(group[0]))
		} else {
			par := Template{Name: e.name("at-" + durationName(start)), Type: TypeParallel}
			for _, it := range group {
				if it.start == start {
					par.Children = append(par.Children, chaos(it))
					continue
				}
				ser := Template{Name: e.name(it.tmpl.Name + "-delayed"), Type: TypeSerial}
				ser.Children = []string{suspend(it.tmpl.Name+"-delay", it.start-start), chaos(it)}
				templates = append(templates, ser)
				par.Children = append(par.Children, ser.Name)
			}
			templates = append(templates, par)
			entry.Children = append(entry.Children, par.Name)
		}
		cursor = end
	}
	if d := e.sc.Duration.D(); d > cursor {
		entry.Children = append(entry.Children, suspend("observe-until-"+durationName(d), d-cursor))
	}
	return &Workflow{
		APIVersion: APIVersion,
		Kind:       KindWorkflow,
		Metadata: ObjectMeta{
			Name:      e.o.Name,
			Namespace: e.o.Namespace,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "nfslab"},
			Annotations: map[string]string{
				"nfslab.dev/scenario": e.sc.Metadata.Name,
			},
		},
		Spec: WorkflowSpec{Entry: entry.Name, Templates: append([]Template{entry}, templates...)},
	}
}

func deadline(d time.Duration) *string {
	s := d.String()
	return &s
}

// durationName writes d for a template name: 1m50s gives "1m50s".
func durationName(d time.Duration) string {
	return strings.ReplaceAll(d.String(), ".", "-")
}

// Items counts the chaos templates of w (for tests and the command).
func Items(w *Workflow) int {
	n := 0
	for _, t := range w.Spec.Templates {
		if t.EmbedChaos != nil {
			n++
		}
	}
	return n
}
