package scenario

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/detect"
	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/faultfs"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/nfsserver"
	"github.com/nfslab/nfslab/pkg/zeebe"
)

// ErrInvalid wraps every decoding and validation error so callers can map
// it to a usage error (exit status 2).
var ErrInvalid = errors.New("invalid scenario")

// Problem is one bad value, named by its path in the document
// ("timeline[2].fault.prob") and, when known, its line and column.
type Problem struct {
	Path   string `json:"path"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Msg    string `json:"msg"`
}

func (p Problem) String() string {
	loc := ""
	if p.Line > 0 {
		loc = fmt.Sprintf("line %d, column %d: ", p.Line, p.Column)
	}
	if p.Path == "" {
		return loc + p.Msg
	}
	return loc + p.Path + ": " + p.Msg
}

// ValidationError lists every problem found, not just the first.
type ValidationError struct {
	File     string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	name := e.File
	if name == "" {
		name = "scenario"
	}
	fmt.Fprintf(&b, "%s: %d problem(s)", name, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

func (e *ValidationError) Unwrap() error { return ErrInvalid }

// BuiltinDetectors are the detectors pkg/detect provides, by name; taken
// from pkg/detect so that the two cannot drift apart.
var BuiltinDetectors = detect.Names()

// probeDetectors are the built-ins a probe target can produce: the JVM's
// own failure output, and replay start from the probe's progress lines.
// The rest match Zeebe's log lines, which the probe never prints.
var probeDetectors = []string{"msync-ioexception", "jvm-sigbus", "hs-err-file", "replay-start"}

// ErrorCodes are the codes an errors expectation may name besides "any":
// the classes the Zeebe load records errors under (zeebe.ErrorClass), so
// that an expectation never waits for a code nothing counts.
var ErrorCodes = zeebe.ErrorClasses()

// FindingCauses are the causes netfault.Diagnose reports.
var FindingCauses = netfault.Causes()

// Event prefixes for "on:".
const (
	EventFaultFirstHit = "fault-first-hit:"
	EventStepDone      = "step-done:"
	EventTargetExited  = "target-exited"
)

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	envKeyRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	heapRE     = regexp.MustCompile(`^[0-9]+[kKmMgG]$`)
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
)

// MaxDuration bounds a scenario's timeline.
const MaxDuration = 24 * time.Hour

type checker struct{ probs []Problem }

func (c *checker) add(path, format string, args ...any) {
	c.probs = append(c.probs, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks the whole scenario and returns a *ValidationError listing
// every problem, or nil. It touches nothing.
func (s *Scenario) Validate() error {
	c := &checker{}
	s.validate(c)
	if len(c.probs) == 0 {
		return nil
	}
	return &ValidationError{Problems: c.probs}
}

func (s *Scenario) validate(c *checker) {
	if !nameRE.MatchString(s.Metadata.Name) {
		c.add("metadata.name", "name %q must be 1-63 lower-case letters, digits or dashes", s.Metadata.Name)
	}
	if s.Duration <= 0 {
		c.add("duration", "duration is required and must be positive (e.g. 3m)")
	} else if s.Duration.D() > MaxDuration {
		c.add("duration", "duration %v exceeds the maximum of %v", s.Duration, MaxDuration)
	}
	s.validateStorage(c)
	s.validateTarget(c)
	s.validateLoad(c)
	custom := s.validateDetectors(c)
	steps := s.validateTimeline(c, custom)
	s.validateExpectations(c, steps, custom)
	for i := range s.Rollbacks {
		s.validateRollback(c, i, steps)
	}
}

func (s *Scenario) validateStorage(c *checker) {
	st := s.Storage
	switch st.Kind {
	case StorageNFS:
		if st.Server == nil {
			c.add("storage.server", "an nfs storage needs a server {kind: netns|external|container}")
		} else {
			sv := st.Server
			switch sv.Kind {
			case ServerNetns, ServerContainer:
			case ServerExternal:
				if sv.Address == "" {
					c.add("storage.server.address", "an external server needs an address")
				}
			default:
				c.add("storage.server.kind", "server kind %q is not one of netns, external, container", sv.Kind)
			}
			if sv.Address != "" && !validHost(sv.Address) {
				c.add("storage.server.address", "address %q is not an IP address or host name", sv.Address)
			}
			if sv.Export != "" && !strings.HasPrefix(sv.Export, "/") {
				c.add("storage.server.export", "export %q must be an absolute path", sv.Export)
			}
			if sv.ExportSize != 0 && (sv.Kind != ServerNetns || sv.ExportSize < 1<<20) {
				c.add("storage.server.export_size", "export_size %s needs server kind netns and at least 1MB", sv.ExportSize)
			}
			switch {
			case sv.ExportFS != "" && !slices.Contains(nfsserver.ExportFSes, sv.ExportFS):
				c.add("storage.server.export_fs", "export_fs %q is not one of %s", sv.ExportFS, strings.Join(nfsserver.ExportFSes, ", "))
			case sv.ExportFS == nfsserver.ExportExt4 && sv.ExportSize < 16<<20:
				c.add("storage.server.export_fs", "export_fs ext4 needs export_size of at least 16MB")
			}
			if sv.Image != "" && sv.Kind != ServerContainer {
				c.add("storage.server.image", "image applies only to server kind container")
			}
			switch sv.LocalIO {
			case "", LocalIOAllow, LocalIODisable:
				if sv.LocalIO != "" && sv.Kind != ServerNetns {
					c.add("storage.server.localio", "localio %q needs server kind netns", sv.LocalIO)
				}
			default:
				c.add("storage.server.localio", "localio %q is not one of %s, %s", sv.LocalIO, LocalIOAllow, LocalIODisable)
			}
			if sv.Publish != "" {
				if sv.Kind != ServerContainer {
					// podman's own port mapping publishes the container
					// server; nfslab no longer imitates it for the others.
					c.add("storage.server.publish", "publish applies only to server kind container (podman -p ADDRESS:PORT:2049), not %q", sv.Kind)
				} else if _, err := netip.ParseAddrPort(sv.Publish); err != nil {
					c.add("storage.server.publish", "publish %q is not ADDRESS:PORT", sv.Publish)
				}
			}
		}
		if err := checkMountOptions(st.Options); err != nil {
			c.add("storage.options", "%v", err)
		}
		if st.Faultfs != nil {
			c.add("storage.faultfs", "faultfs settings apply only to storage kind faultfs")
		}
	case StorageFaultfs, StorageLocal:
		if st.Server != nil {
			c.add("storage.server", "a server applies only to storage kind nfs")
		}
		if st.Options != "" {
			c.add("storage.options", "mount options apply only to storage kind nfs")
		}
		if st.Kind == StorageLocal && st.Faultfs != nil {
			c.add("storage.faultfs", "faultfs settings apply only to storage kind faultfs")
		}
		if st.Faultfs != nil && st.Faultfs.Backing != "" && !filepath.IsAbs(st.Faultfs.Backing) {
			c.add("storage.faultfs.backing", "backing directory %q must be an absolute path", st.Faultfs.Backing)
		}
	default:
		c.add("storage.kind", "storage kind %q is not one of nfs, faultfs, local", st.Kind)
	}
	if st.Subdir != "" && (filepath.IsAbs(st.Subdir) || slices.Contains(strings.Split(st.Subdir, "/"), "..")) {
		c.add("storage.subdir", "subdir %q must be relative and stay inside the mount", st.Subdir)
	}
}

// checkMountOptions parses opts with pkg/mount's parser, the one the
// storage mounts with, so a scenario is refused for exactly the options the
// mount would refuse.
func checkMountOptions(opts string) error {
	if opts == "" {
		return nil
	}
	if _, err := mount.ParseNFSOptions(opts); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), mount.ErrInvalid.Error()+": "))
	}
	return nil
}

func validHost(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	return hostnameRE.MatchString(s) && net.ParseIP(s) == nil
}

func (s *Scenario) validateTarget(c *checker) {
	t := s.Target
	switch t.Kind {
	case TargetProbe, TargetZeebe:
	default:
		c.add("target.kind", "target kind %q is not one of probe, zeebe", t.Kind)
	}
	if p := t.Probe; p != nil {
		if p.SegmentSize != 0 && (p.SegmentSize < 64<<10 || p.SegmentSize > 1<<30) {
			c.add("target.probe.segment_size", "segment size %v is out of range (64KB-1GB)", p.SegmentSize)
		}
		if p.RecordSize != 0 && (p.RecordSize < 16 || p.RecordSize > 1<<20 || (p.SegmentSize != 0 && p.RecordSize > p.SegmentSize)) {
			c.add("target.probe.record_size", "record size %v is out of range (16B-1MB, at most the segment size)", p.RecordSize)
		}
		if p.Batch < 0 || p.Batch > 1_000_000 {
			c.add("target.probe.batch", "batch %d is out of range (0-1000000)", p.Batch)
		}
		if bad(p.Rate) || p.Rate < 0 {
			c.add("target.probe.rate", "rate %v must be a non-negative number", p.Rate)
		}
		if p.Prefill < 0 || p.Prefill > 8<<30 {
			c.add("target.probe.prefill", "prefill %v is out of range (0-8GB)", p.Prefill)
		}
		if p.Heap != "" && !heapRE.MatchString(p.Heap) {
			c.add("target.probe.heap", "heap %q is not a JVM size such as 256m", p.Heap)
		}
	}
	if z := t.Zeebe; z != nil {
		if z.Brokers < 0 || z.Brokers > 9 {
			c.add("target.zeebe.brokers", "brokers %d is out of range (1-9)", z.Brokers)
		}
		if z.Partitions < 0 || z.Partitions > 64 {
			c.add("target.zeebe.partitions", "partitions %d is out of range (1-64)", z.Partitions)
		}
		if z.Replication < 0 || z.Replication > max(z.Brokers, 1) {
			c.add("target.zeebe.replication", "replication factor %d exceeds the %d broker(s)", z.Replication, max(z.Brokers, 1))
		}
		for _, pf := range []struct {
			name string
			v    int
		}{{"gateway_port", z.GatewayPort}, {"monitoring_port", z.MonitoringPort}} {
			if pf.v < 0 || pf.v > 65535 {
				c.add("target.zeebe."+pf.name, "port %d is out of range (1-65535)", pf.v)
			}
		}
		for k := range z.Env {
			if !envKeyRE.MatchString(k) {
				c.add("target.zeebe.env", "environment variable name %q is not valid", k)
			}
		}
	}
	if t.Kind == TargetZeebe && t.Zeebe == nil {
		c.add("target.zeebe", "target kind zeebe needs a zeebe block (at least {image: ...})")
	}
}

func bad(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }

// LoadKind resolves "auto" (and empty) to the target's own load.
func (s *Scenario) LoadKind() string {
	switch s.Load.Kind {
	case "", LoadAuto:
		if s.Target.Kind == TargetZeebe {
			return LoadZeebe
		}
		return LoadProbe
	}
	return s.Load.Kind
}

func (s *Scenario) validateLoad(c *checker) {
	l := s.Load
	switch l.Kind {
	case "", LoadAuto, LoadNone:
	case LoadZeebe:
		if s.Target.Kind != TargetZeebe {
			c.add("load.kind", "load kind zeebe needs target kind zeebe, not %q", s.Target.Kind)
		}
	case LoadProbe:
		if s.Target.Kind != TargetProbe {
			c.add("load.kind", "load kind probe needs target kind probe, not %q", s.Target.Kind)
		}
	default:
		c.add("load.kind", "load kind %q is not one of auto, zeebe, probe, none", l.Kind)
	}
	if bad(l.Rate) || l.Rate < 0 || l.Rate > 10000 {
		c.add("load.rate", "rate %v is out of range (0-10000 instances per second)", l.Rate)
	}
	if l.DeployEvery != 0 && s.LoadKind() != LoadZeebe {
		c.add("load.deploy_every", "deploy_every applies only to zeebe load")
	}
	if l.Deployments < 0 || l.Deployments > 100000 {
		c.add("load.deployments", "deployments %d is out of range (0-100000)", l.Deployments)
	}
}

func (s *Scenario) validateDetectors(c *checker) map[string]bool {
	custom := map[string]bool{}
	for i, d := range s.Detectors {
		p := fmt.Sprintf("detectors[%d]", i)
		if !nameRE.MatchString(d.Name) {
			c.add(p+".name", "detector name %q must be lower-case letters, digits or dashes", d.Name)
		}
		if slices.Contains(BuiltinDetectors, d.Name) || custom[d.Name] {
			c.add(p+".name", "detector name %q is already taken", d.Name)
		}
		if _, err := regexp.Compile(d.Pattern); err != nil || d.Pattern == "" {
			c.add(p+".pattern", "pattern %q is not a regular expression: %v", d.Pattern, err)
		}
		custom[d.Name] = true
	}
	return custom
}

// Produces reports whether something in the scenario emits detector name.
func (s *Scenario) producesDetector(name string, custom map[string]bool, targetKind string) error {
	if custom[name] {
		return nil
	}
	if !slices.Contains(BuiltinDetectors, name) {
		return fmt.Errorf("unknown detector %q (built-ins: %s; or declare it under detectors:)", name, strings.Join(BuiltinDetectors, ", "))
	}
	if targetKind == TargetProbe && !slices.Contains(probeDetectors, name) {
		return fmt.Errorf("nothing produces %q with target probe: it matches Zeebe's log lines, which the probe never prints (probe events: %s)", name, strings.Join(probeDetectors, ", "))
	}
	return nil
}

var faultActions = []string{ActionDrop, ActionReject, ActionUnreachable, ActionDelay, ActionLimit}
var serverActions = []string{ActionServerRestart, ActionServerUnexport, ActionServerExpire, ActionServerFill, ActionServerEIO}

// IsNetworkFault reports whether action applies a network fault (a
// netfault.Kind of the same name).
func IsNetworkFault(action string) bool { return slices.Contains(faultActions, action) }

var containerActions = []string{ActionPause, ActionUnpause, ActionStop, ActionKill, ActionRestart}

func (s *Scenario) brokers() int {
	if s.Target.Zeebe == nil || s.Target.Zeebe.Brokers == 0 {
		return 1
	}
	return s.Target.Zeebe.Brokers
}

func (s *Scenario) partitions() int {
	if s.Target.Zeebe == nil || s.Target.Zeebe.Partitions == 0 {
		return 1
	}
	return s.Target.Zeebe.Partitions
}

// checkRef checks a $placeholder in a fault's dst or in against the
// scenario: its storage, its number of brokers and partitions.
func (s *Scenario) checkRef(text string) error {
	ref, err := ParseRef(text)
	if err != nil {
		return err
	}
	switch ref.Kind {
	case RefNFSServer:
		if s.Storage.Kind != StorageNFS {
			return fmt.Errorf("%s needs storage kind nfs, not %q", ref, s.Storage.Kind)
		}
		return nil
	}
	if s.Target.Kind != TargetZeebe {
		return fmt.Errorf("%s needs target kind zeebe", ref)
	}
	if ref.Kind == RefBroker && ref.N >= s.brokers() {
		return fmt.Errorf("%s: broker index must be 0-%d", ref, s.brokers()-1)
	}
	if ref.Kind == RefLeader && ref.N > s.partitions() {
		return fmt.Errorf("%s: partition must be 1-%d", ref, s.partitions())
	}
	return nil
}

// checkBroker checks a broker's name (zeebe.NodeName) against the
// scenario's number of brokers.
func (s *Scenario) checkBroker(name string) error {
	n, err := zeebe.ParseNodeName(name)
	if err != nil {
		return err
	}
	if n >= s.brokers() {
		return fmt.Errorf("%q: there are only %d broker(s)", name, s.brokers())
	}
	return nil
}

// NetfaultSpec returns the step's fault as applied: the decoded Spec with
// the step's kind, lifetime and label, dst resolved by resolve (which
// handles $references), a rule fault's default port, and defaults applied.
func (st *Step) NetfaultSpec(resolve func(ref string) (string, error)) (netfault.Spec, error) {
	f := st.Fault
	if f == nil {
		return netfault.Spec{}, fmt.Errorf("step %q has no fault", st.ID)
	}
	spec := f.Spec
	spec.Kind = netfault.Kind(st.Action)
	if IsRef(spec.Dst) {
		v, err := resolve(spec.Dst)
		if err != nil {
			return netfault.Spec{}, fmt.Errorf("resolving %s: %w", spec.Dst, err)
		}
		spec.Dst = v
	}
	if spec.Selects() && !f.portGiven {
		spec.Port = netfault.DefaultPortFor(spec)
	}
	spec.For = st.For.D()
	spec.Label = "step:" + st.ID
	return spec.WithDefaults(), nil
}

// placeholderAddr stands in for $references during validation.
func placeholderAddr(string) (string, error) { return "192.0.2.1", nil }

func (s *Scenario) validateTimeline(c *checker, custom map[string]bool) map[string]*Step {
	steps := map[string]*Step{}
	for i := range s.Timeline {
		st := &s.Timeline[i]
		p := fmt.Sprintf("timeline[%d]", i)
		if !nameRE.MatchString(st.ID) || st.ID == "all" {
			c.add(p+".id", "step id %q must be lower-case letters, digits or dashes (and not \"all\")", st.ID)
		} else if steps[st.ID] != nil {
			c.add(p+".id", "step id %q is used twice", st.ID)
		} else {
			steps[st.ID] = st
		}
	}
	for i := range s.Timeline {
		st := &s.Timeline[i]
		p := fmt.Sprintf("timeline[%d]", i)
		switch {
		case st.At == nil && st.On == "":
			c.add(p, "step %q needs a start: at: OFFSET or on: EVENT", st.ID)
		case st.At != nil && st.On != "":
			c.add(p, "step %q has both at and on; give one", st.ID)
		}
		if st.At != nil && s.Duration > 0 {
			if *st.At > s.Duration {
				c.add(p+".at", "step %q starts at %v, after the end of the timeline (duration %v)", st.ID, *st.At, s.Duration)
			} else if st.At.D()+st.For.D() > s.Duration.D() {
				c.add(p+".for", "step %q lasts until %v, after the end of the timeline (duration %v)", st.ID, st.At.D()+st.For.D(), s.Duration)
			}
		}
		if st.Delay != 0 && st.On == "" {
			c.add(p+".delay", "delay applies only to steps that start on an event")
		}
		if st.On != "" {
			if err := s.checkEvent(st.On, st.ID, steps, custom); err != nil {
				c.add(p+".on", "%v", err)
			}
		}
		s.validateAction(c, p, st, steps, false)
	}
	// A step waiting on a chain of step-done events that loops never starts.
	for i := range s.Timeline {
		seen := map[string]bool{}
		id := s.Timeline[i].ID
		for cur := steps[id]; cur != nil && strings.HasPrefix(cur.On, EventStepDone) || cur != nil && strings.HasPrefix(cur.On, EventFaultFirstHit); {
			dep := cur.On[strings.Index(cur.On, ":")+1:]
			if seen[dep] {
				c.add(fmt.Sprintf("timeline[%d].on", i), "step %q waits on a cycle of steps (%s) and would never start", id, dep)
				break
			}
			seen[dep] = true
			cur = steps[dep]
		}
	}
	return steps
}

func (s *Scenario) checkEvent(ev, self string, steps map[string]*Step, custom map[string]bool) error {
	switch {
	case ev == EventTargetExited:
		return nil
	case strings.HasPrefix(ev, EventStepDone):
		ref := strings.TrimPrefix(ev, EventStepDone)
		if steps[ref] == nil {
			return fmt.Errorf("event %q: no step %q", ev, ref)
		}
		if ref == self {
			return fmt.Errorf("event %q: a step cannot wait for itself", ev)
		}
	case strings.HasPrefix(ev, EventFaultFirstHit):
		ref := strings.TrimPrefix(ev, EventFaultFirstHit)
		st := steps[ref]
		if st == nil {
			return fmt.Errorf("event %q: no step %q", ev, ref)
		}
		if !netfault.Kind(st.Action).Counted() {
			return fmt.Errorf("event %q: nothing produces it, step %q is a %s and has no packet counters (only drop, reject, delay and limit do)", ev, ref, st.Action)
		}
		if ref == self {
			return fmt.Errorf("event %q: a step cannot wait for itself", ev)
		}
	default:
		if err := s.producesDetector(ev, custom, s.Target.Kind); err != nil {
			return fmt.Errorf("event %q: %w", ev, err)
		}
	}
	return nil
}

func (s *Scenario) validateAction(c *checker, p string, st *Step, steps map[string]*Step, rollback bool) {
	if !slices.Contains(Actions, st.Action) {
		c.add(p+".action", "unknown action %q (want one of %s)", st.Action, strings.Join(Actions, ", "))
		return
	}
	isFault := slices.Contains(faultActions, st.Action)
	if isFault != (st.Fault != nil) {
		if isFault {
			c.add(p+".fault", "action %s needs a fault: {dst: ...}", st.Action)
		} else {
			c.add(p+".fault", "fault applies only to drop, reject, unreachable, delay and limit, not %s", st.Action)
		}
	}
	if (st.Action == ActionFaultfsSet) != (st.Faultfs != nil) {
		if st.Faultfs == nil {
			c.add(p+".faultfs", "action faultfs-set needs a faultfs rule")
		} else {
			c.add(p+".faultfs", "a faultfs rule applies only to faultfs-set, not %s", st.Action)
		}
	}
	needsRef := st.Action == ActionHeal || st.Action == ActionFaultfsClear
	if needsRef && st.Ref == "" {
		c.add(p+".ref", "action %s needs ref: STEP-ID or all", st.Action)
	}
	if !needsRef && st.Ref != "" {
		c.add(p+".ref", "ref applies only to heal and faultfs-clear, not %s", st.Action)
	}
	if st.Ref != "" && st.Ref != "all" && needsRef {
		ref := steps[st.Ref]
		switch {
		case ref == nil:
			c.add(p+".ref", "no step %q to %s", st.Ref, st.Action)
		case st.Action == ActionHeal && !slices.Contains(faultActions, ref.Action):
			c.add(p+".ref", "step %q is a %s, not a network fault to heal", st.Ref, ref.Action)
		case st.Action == ActionFaultfsClear && ref.Action != ActionFaultfsSet:
			c.add(p+".ref", "step %q is a %s, not a faultfs-set to clear", st.Ref, ref.Action)
		}
	}
	if st.Container != "" {
		if !slices.Contains(containerActions, st.Action) {
			c.add(p+".container", "container applies only to pause, unpause, stop, kill, restart")
		} else if s.Target.Kind != TargetZeebe {
			c.add(p+".container", "container %q needs target kind zeebe (the probe is one process)", st.Container)
		} else if err := s.checkBroker(st.Container); err != nil {
			c.add(p+".container", "container %v", err)
		}
	}
	if st.DropCache && st.Action != ActionRestartTarget {
		c.add(p+".drop_cache", "drop_cache applies only to restart-target")
	}
	if st.DropCache && s.Storage.Kind == StorageLocal {
		c.add(p+".drop_cache", "drop_cache needs storage kind nfs or faultfs")
	}
	if st.For != 0 && !IsNetworkFault(st.Action) && !slices.Contains([]string{ActionFaultfsSet, ActionPause, ActionWait, ActionServerRestart, ActionServerUnexport, ActionServerFill, ActionServerEIO}, st.Action) {
		c.add(p+".for", "for applies to drop, reject, unreachable, delay, limit, faultfs-set, pause, wait, server-restart, server-unexport, server-fill and server-eio, not %s", st.Action)
	}
	ownServer := s.Storage.Kind == StorageNFS && s.Storage.Server != nil && (s.Storage.Server.Kind == ServerNetns || s.Storage.Server.Kind == ServerContainer)
	if slices.Contains(serverActions, st.Action) && !ownServer {
		c.add(p+".action", "%s needs nfslab's own server (storage kind nfs, server kind netns or container)", st.Action)
	} else if st.Action != ActionServerRestart && slices.Contains(serverActions, st.Action) && s.Storage.Server.Kind == ServerContainer {
		c.add(p+".action", "%s needs server kind netns: the container server has only server-restart", st.Action)
	} else if st.Action == ActionServerFill && s.Storage.Server.ExportSize == 0 {
		c.add(p+".action", "server-fill needs a size-bounded export: storage.server.export_size")
	} else if st.Action == ActionServerEIO && s.Storage.Server.ExportFS != nfsserver.ExportExt4 {
		c.add(p+".action", "server-eio needs the export on a block device: storage.server.export_size and export_fs: ext4")
	}
	switch {
	case st.Action == ActionServerEIO && st.EIO == nil:
		c.add(p+".eio", "server-eio needs eio: {path: FILE} and/or {blocks: FIRST-LAST}")
	case st.EIO != nil && st.Action != ActionServerEIO:
		c.add(p+".eio", "eio applies only to server-eio")
	case st.EIO != nil:
		if err := st.EIO.Validate(nfsserver.FaultEIO); err != nil {
			c.add(p+".eio", "%v", err)
		}
	}
	if st.Action == ActionWait && st.For == 0 {
		c.add(p+".for", "wait needs for: DURATION")
	}
	if st.Action == ActionFaultfsSet || st.Action == ActionFaultfsClear {
		if s.Storage.Kind != StorageFaultfs {
			c.add(p+".action", "%s needs storage kind faultfs, not %q", st.Action, s.Storage.Kind)
		}
	}
	if st.Faultfs != nil {
		validateFaultfsRule(c, p+".faultfs", st.Faultfs)
	}
	if st.Fault != nil && isFault {
		s.validateFault(c, p+".fault", st)
	}
	if rollback && isFault {
		c.add(p+".action", "a rollback cannot create a fault (%s)", st.Action)
	}
}

func (s *Scenario) validateFault(c *checker, p string, st *Step) {
	f := st.Fault
	for _, ref := range []struct{ field, v string }{{"dst", f.Dst}, {"in", f.In}} {
		if IsRef(ref.v) {
			if err := s.checkRef(ref.v); err != nil {
				c.add(p+"."+ref.field, "%v", err)
			}
		}
	}
	if f.In != "" && !IsRef(f.In) {
		if s.Target.Kind != TargetZeebe {
			c.add(p+".in", "in %q needs target kind zeebe", f.In)
		} else if err := s.checkBroker(f.In); err != nil {
			c.add(p+".in", "in %v (or %sP)", err, RefLeader)
		}
	}
	if f.In != "" && f.Netns != "" {
		c.add(p+".in", "give in (a container) or netns, not both")
	}
	// The YAML edge: the spec as the step would apply it, with a
	// placeholder for $references, validated by netfault.
	spec, err := st.NetfaultSpec(placeholderAddr)
	if err != nil {
		c.add(p, "%v", err)
		return
	}
	if err := spec.Validate(); err != nil {
		c.add(p, "%s", strings.TrimPrefix(err.Error(), netfault.ErrInvalid.Error()+": "))
	}
}

// validateFaultfsRule checks r in faultfs's own vocabulary (its operation
// and errno names come from pkg/faultfs) and then as the faultfs rules it
// becomes, so a scenario accepts exactly what faultfs does.
func validateFaultfsRule(c *checker, p string, r *FaultfsRule) {
	vocab := true
	if len(r.Ops) == 0 {
		c.add(p+".ops", "a faultfs rule needs ops (e.g. [fsync] or [read])")
		vocab = false
	}
	for _, op := range r.Ops {
		if _, err := faultfs.ParseOp(op); err != nil {
			hint := ""
			if op == "all" {
				hint = "; every operation is any"
			}
			c.add(p+".ops", "unknown operation %q (want %s%s)", op, strings.Join(faultfs.OpNames(), ", "), hint)
			vocab = false
		}
	}
	if _, err := faultfs.ParseErrno(r.Errno); err != nil {
		c.add(p+".errno", "unknown errno %q (want an errno(3) name such as %s)", r.Errno, strings.Join(faultfs.ErrnoNames(), ", "))
		vocab = false
	}
	if bad(r.Prob) || r.Prob < 0 || r.Prob > 1 {
		c.add(p+".prob", "probability %v is out of range (0-1; 0 means always)", r.Prob)
		vocab = false
	}
	if r.Latency.D() > time.Hour {
		c.add(p+".latency", "latency %v is longer than an hour", r.Latency)
	}
	if !vocab {
		return
	}
	if _, err := r.Rules("validate"); err != nil {
		c.add(p, "%s", strings.TrimPrefix(err.Error(), faultfs.ErrInvalid.Error()+": "))
	}
}

// Rules turns r into the faultfs rules it installs, one per operation,
// with IDs id-OP, defaults applied and validated by faultfs.
func (r FaultfsRule) Rules(id string) ([]faultfs.Rule, error) {
	errno, err := faultfs.ParseErrno(r.Errno)
	if err != nil {
		return nil, err
	}
	out := make([]faultfs.Rule, 0, len(r.Ops))
	for _, name := range r.Ops {
		op, err := faultfs.ParseOp(name)
		if err != nil {
			return nil, err
		}
		fr := faultfs.Rule{ID: id + "-" + name, Op: op, PathGlob: r.Path, Errno: errno, Prob: r.Prob,
			Latency: r.Latency, Offset: int64(r.Offset), Length: int64(r.Length)}.WithDefaults()
		if err := fr.Validate(); err != nil {
			return nil, err
		}
		out = append(out, fr)
	}
	return out, nil
}

// expectation fields allowed per kind (besides name, kind, targets).
var expectFields = map[string][]string{
	ExpectDetectorFires:  {"detector", "after", "settle", "within"},
	ExpectDetectorAbsent: {"detector", "after", "settle", "within"},
	ExpectRateBelow:      {"after", "settle", "within", "metric", "fraction", "baseline", "baseline_before"},
	ExpectRateAbove:      {"after", "settle", "within", "metric", "fraction", "baseline", "baseline_before"},
	ExpectErrorsAppear:   {"after", "settle", "within", "code"},
	ExpectErrorsAbsent:   {"after", "settle", "within", "code"},
	ExpectRecovery:       {"after", "within", "by", "metric", "fraction", "detector", "baseline", "baseline_before"},
	ExpectFaultHits:      {"step"},
	ExpectFaultNoHits:    {"step", "cause"},
	ExpectExitCode:       {"after", "within", "exit_code"},
}

func setFields(e *Expectation) []string {
	var f []string
	add := func(name string, set bool) {
		if set {
			f = append(f, name)
		}
	}
	add("detector", e.Detector != "")
	add("after", e.After != "")
	add("settle", e.Settle != 0)
	add("within", e.Within != 0)
	add("metric", e.Metric != "")
	add("fraction", e.Fraction != 0)
	add("baseline", e.Baseline != 0)
	add("baseline_before", e.BaselineBefore != "")
	add("code", e.Code != "")
	add("by", e.By != "")
	add("step", e.Step != "")
	add("cause", e.Cause != "")
	add("exit_code", e.ExitCode != nil)
	return f
}

// Applies reports whether e applies to the scenario's target kind.
func (e *Expectation) Applies(targetKind string) bool {
	return len(e.Targets) == 0 || slices.Contains(e.Targets, targetKind)
}

// Metrics are the load rates expectations may name, per load kind.
var Metrics = map[string][]string{
	LoadProbe: {"appends"},
	LoadZeebe: {"created", "completed", "created-partition-N"},
}

var partitionMetricRE = regexp.MustCompile(`^created-partition-([0-9]+)$`)

func (s *Scenario) validMetric(m string) bool {
	if sm := partitionMetricRE.FindStringSubmatch(m); sm != nil && s.LoadKind() == LoadZeebe {
		n, _ := strconv.Atoi(sm[1])
		return n >= 1 && n <= s.partitions()
	}
	return slices.Contains(Metrics[s.LoadKind()], m)
}

func (s *Scenario) validateExpectations(c *checker, steps map[string]*Step, custom map[string]bool) {
	if len(s.Expectations) == 0 {
		c.add("expectations", "a scenario needs at least one expectation: the verdict is made of them")
	}
	for i := range s.Expectations {
		e := &s.Expectations[i]
		p := fmt.Sprintf("expectations[%d]", i)
		allowed, ok := expectFields[e.Kind]
		if !ok {
			c.add(p+".kind", "unknown expectation kind %q (want one of %s)", e.Kind, strings.Join(ExpectationKinds, ", "))
			continue
		}
		for _, t := range e.Targets {
			if t != TargetProbe && t != TargetZeebe {
				c.add(p+".targets", "target kind %q is not one of probe, zeebe", t)
			}
		}
		for _, f := range setFields(e) {
			if !slices.Contains(allowed, f) {
				c.add(p+"."+f, "%s does not apply to a %s expectation", f, e.Kind)
			}
		}
		applies := e.Applies(s.Target.Kind)
		for _, ref := range []struct{ field, id string }{{"after", e.After}, {"baseline_before", e.BaselineBefore}, {"step", e.Step}} {
			if ref.id != "" && steps[ref.id] == nil {
				c.add(p+"."+ref.field, "no step %q", ref.id)
			}
		}
		needsWithin := e.Kind != ExpectFaultHits && e.Kind != ExpectFaultNoHits
		if needsWithin && e.Within <= 0 {
			c.add(p+".within", "a %s expectation needs within: DURATION (its window)", e.Kind)
		}
		if e.Settle != 0 && e.Settle >= e.Within {
			c.add(p+".settle", "settle %v must be shorter than within %v", e.Settle, e.Within)
		}
		if needsWithin && e.Within > 0 && s.Duration > 0 {
			start := duration.Duration(0)
			if st := steps[e.After]; st != nil && st.At != nil {
				start = *st.At
				if e.Kind == ExpectRecovery {
					start += st.For
				}
			}
			if start+e.Within > s.Duration && (e.After == "" || steps[e.After] != nil && steps[e.After].At != nil) {
				c.add(p+".within", "window ends at %v, after the end of the timeline (duration %v)", start+e.Within, s.Duration)
			}
		}
		needsDetector := e.Kind == ExpectDetectorFires || e.Kind == ExpectDetectorAbsent || e.Kind == ExpectRecovery && e.By == RecoverByDetector
		if needsDetector && e.Detector == "" {
			c.add(p+".detector", "a %s expectation needs a detector", e.Kind)
		}
		if e.Detector != "" && applies {
			if err := s.producesDetector(e.Detector, custom, s.Target.Kind); err != nil {
				c.add(p+".detector", "%v", err)
			}
		}
		isRate := e.Kind == ExpectRateBelow || e.Kind == ExpectRateAbove || e.Kind == ExpectRecovery && e.By == RecoverByRate
		if isRate {
			if bad(e.Fraction) || e.Fraction <= 0 || e.Fraction > 1 {
				c.add(p+".fraction", "fraction %v is out of range (want 0 < f <= 1 of the baseline)", e.Fraction)
			}
			if applies && s.LoadKind() == LoadNone {
				c.add(p+".kind", "a rate expectation needs load (load.kind is none)")
			}
		}
		if e.Metric != "" && applies && !s.validMetric(e.Metric) {
			c.add(p+".metric", "metric %q is not a rate of load %s (want %s)", e.Metric, s.LoadKind(), strings.Join(Metrics[s.LoadKind()], ", "))
		}
		if e.Kind == ExpectErrorsAppear || e.Kind == ExpectErrorsAbsent {
			if e.Code != "any" && !slices.Contains(ErrorCodes, e.Code) {
				c.add(p+".code", "code %q is not one the Zeebe load counts (want any or one of %s)", e.Code, strings.Join(ErrorCodes, ", "))
			}
		}
		if e.Kind == ExpectRecovery {
			switch e.By {
			case RecoverByRate, RecoverByDetector:
			case RecoverByAppending:
				if applies && s.LoadKind() != LoadProbe {
					c.add(p+".by", "recovery by appending needs the probe load")
				}
			default:
				c.add(p+".by", "recovery by %q is not one of rate, detector, appending", e.By)
			}
			if e.After == "" {
				c.add(p+".after", "a recovery expectation needs after: the heal step (or a step with for)")
			} else if st := steps[e.After]; st != nil && st.Action != ActionHeal && st.Action != ActionFaultfsClear && st.For == 0 {
				c.add(p+".after", "step %q neither heals nor has a for: duration; recovery is measured from a heal", e.After)
			}
		}
		if e.Kind == ExpectFaultHits || e.Kind == ExpectFaultNoHits {
			if e.Step == "" {
				c.add(p+".step", "a %s expectation needs step: the drop or reject step", e.Kind)
			} else if st := steps[e.Step]; st != nil && !netfault.Kind(st.Action).Counted() {
				c.add(p+".step", "step %q is a %s and has no packet counters", e.Step, st.Action)
			}
			if e.Cause != "" && !slices.Contains(FindingCauses, e.Cause) {
				c.add(p+".cause", "cause %q is not one of %s", e.Cause, strings.Join(FindingCauses, ", "))
			}
		}
		if e.Kind == ExpectExitCode {
			if e.ExitCode == nil {
				c.add(p+".exit_code", "an exit-code expectation needs exit_code")
			} else if *e.ExitCode < 0 || *e.ExitCode > 255 {
				c.add(p+".exit_code", "exit code %d is out of range (0-255)", *e.ExitCode)
			}
		}
	}
}

var rollbackActions = []string{ActionHeal, ActionUnpause, ActionRestart, ActionRestartTarget, ActionFaultfsClear, ActionStop, ActionKill}

func (s *Scenario) validateRollback(c *checker, i int, steps map[string]*Step) {
	st := &s.Rollbacks[i]
	p := fmt.Sprintf("rollbacks[%d]", i)
	if st.At != nil || st.On != "" || st.Delay != 0 || st.For != 0 {
		c.add(p, "a rollback runs after the timeline; at, on, delay and for do not apply")
	}
	if st.ID != "" && !nameRE.MatchString(st.ID) {
		c.add(p+".id", "id %q must be lower-case letters, digits or dashes", st.ID)
	}
	if !slices.Contains(rollbackActions, st.Action) && slices.Contains(Actions, st.Action) {
		c.add(p+".action", "action %s cannot be a rollback (want one of %s)", st.Action, strings.Join(rollbackActions, ", "))
		return
	}
	s.validateAction(c, p, st, steps, true)
}
