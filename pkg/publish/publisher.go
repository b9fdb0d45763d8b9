package publish

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nfslab/nfslab/internal/ownchain"
	"github.com/nfslab/nfslab/internal/statefile"
	"github.com/nfslab/nfslab/pkg/clock"
)

// IPTables is the part of *iptables.IPTables (github.com/coreos/go-iptables)
// that publish uses, acting in one namespace (IPv4). netfaulttest's fake
// satisfies it.
type IPTables = ownchain.IPTables

// Sysctl reads and writes a sysctl ("net.ipv4.conf.all.route_localnet")
// as seen from a namespace ("" = the caller's).
type Sysctl interface {
	Get(netns, key string) (string, error)
	Set(netns, key, value string) error
}

// Options configure a Publisher; zero values give the real kernel.
type Options struct {
	// IPTables returns an IPTables acting in netns; default: go-iptables
	// (`iptables`) run on a thread inside the namespace.
	IPTables func(netns string) (IPTables, error)
	// Sysctl defaults to /proc/sys read and written inside the namespace.
	Sysctl Sysctl
	// StateDir keeps a record per publish; default DefaultStateDir.
	StateDir string
	Clock    clock.Clock // default clock.Real{}
	// NetnsExists reports whether /run/netns/NAME still exists (a record
	// of a namespace that is gone is dropped by Sweep); default os.Stat.
	NetnsExists func(name string) bool
}

// Record is the state a publish leaves in StateDir: what the kernel cannot
// carry (the previous route_localnet) and what Sweep needs to find the
// namespace again after a crash.
type Record struct {
	Spec Spec `json:"spec"`
	// PrevRouteLocalnet is the value to restore when the last publish of
	// the namespace goes; "" when publish did not change it (it was
	// already 1, set by someone else).
	PrevRouteLocalnet string    `json:"prev_route_localnet,omitempty"`
	Created           time.Time `json:"created"`
}

// Publisher sets up and removes publishes. Safe for concurrent use.
type Publisher struct {
	o  Options
	mu sync.Mutex
}

// New returns a Publisher; see Options for the defaults.
func New(o Options) *Publisher {
	if o.IPTables == nil {
		o.IPTables = newIPTables
	}
	if o.Sysctl == nil {
		o.Sysctl = procSysctl{}
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.NetnsExists == nil {
		o.NetnsExists = func(name string) bool {
			_, err := os.Stat(filepath.Join("/run/netns", name))
			return !errors.Is(err, fs.ErrNotExist)
		}
	}
	return &Publisher{o: o}
}

func where(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}

// Publish sets up spec (after WithDefaults and Validate): chains, rules,
// jumps at position 1, route_localnet=1 for a loopback address. All or
// nothing: a failure removes what it added and restores route_localnet.
func (p *Publisher) Publish(ctx context.Context, spec Spec) (Record, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return Record{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	recs, err := p.records()
	if err != nil {
		return Record{}, err
	}
	for _, r := range recs {
		if r.Spec.ID == spec.ID {
			return Record{}, invalid("publish %s exists already (%s -> %s in %s)", spec.ID, r.Spec.From, r.Spec.To, where(r.Spec.Netns))
		}
	}
	ipt, err := p.o.IPTables(spec.Netns)
	if err != nil {
		return Record{}, fmt.Errorf("opening iptables in %s: %w", where(spec.Netns), err)
	}
	rec := Record{Spec: spec, Created: p.o.Clock.Now().UTC()}
	setSysctl := false
	if spec.Loopback() {
		// Every publish of a namespace carries the value from before the
		// first one, so whichever goes last restores it.
		inherited := false
		for _, r := range recs {
			if r.Spec.Netns == spec.Netns && r.Spec.Loopback() {
				rec.PrevRouteLocalnet, inherited = r.PrevRouteLocalnet, true
				break
			}
		}
		cur, err := p.o.Sysctl.Get(spec.Netns, RouteLocalnet)
		if err != nil {
			return Record{}, fmt.Errorf("reading %s in %s: %w", RouteLocalnet, where(spec.Netns), err)
		}
		if cur != "1" {
			setSysctl = true
			if !inherited || rec.PrevRouteLocalnet == "" {
				rec.PrevRouteLocalnet = cur
			}
		}
	}
	// The record goes first: a crash after it leaves a record Sweep uses
	// to find the namespace and restore route_localnet.
	if err := p.writeRecord(rec); err != nil {
		return Record{}, err
	}
	undo := func(cause error) (Record, error) {
		rerr := p.remove(ipt, spec.Netns, spec.ID)
		if setSysctl {
			if err := p.o.Sysctl.Set(spec.Netns, RouteLocalnet, rec.PrevRouteLocalnet); err != nil {
				rerr = errors.Join(rerr, err)
			}
		}
		if rerr == nil {
			rerr = p.removeRecord(spec.ID)
		}
		if rerr != nil {
			return Record{}, errors.Join(cause, fmt.Errorf("rolling back publish %s: %w", spec.ID, rerr))
		}
		return Record{}, cause
	}
	for _, c := range Chains {
		if err := owned(c.Chain, c.Builtin).Create(ipt); err != nil {
			return undo(fmt.Errorf("creating chain %s in %s: %w", c.Chain, where(spec.Netns), err))
		}
	}
	for _, r := range spec.Rules() {
		if err := ipt.Append(Table, r.Chain, r.Args...); err != nil {
			return undo(fmt.Errorf("adding %s in %s: %w", r, where(spec.Netns), err))
		}
	}
	for _, c := range slices.Backward(Chains) {
		if _, err := owned(c.Chain, c.Builtin).EnsureJump(ipt, true); err != nil {
			return undo(fmt.Errorf("adding the jump from %s to %s in %s: %w", c.Builtin, c.Chain, where(spec.Netns), err))
		}
	}
	if setSysctl {
		if err := p.o.Sysctl.Set(spec.Netns, RouteLocalnet, "1"); err != nil {
			return undo(fmt.Errorf("setting %s=1 in %s: %w", RouteLocalnet, where(spec.Netns), err))
		}
	}
	return rec, nil
}

// Unpublish removes publish id from netns: its rules, the chains and jumps
// if they became empty, and, when it was the namespace's last publish,
// route_localnet goes back to its previous value. ErrNotFound when neither
// a record nor a rule of id exists.
func (p *Publisher) Unpublish(ctx context.Context, netns, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	recs, err := p.records()
	if err != nil {
		return err
	}
	var rec *Record
	for i := range recs {
		if recs[i].Spec.ID == id {
			rec = &recs[i]
			netns = rec.Spec.Netns
		}
	}
	ipt, err := p.o.IPTables(netns)
	if err != nil {
		return fmt.Errorf("opening iptables in %s: %w", where(netns), err)
	}
	found, err := p.removeTagged(ipt, netns, func(tag string) bool { return tag == CommentPrefix+id })
	if err != nil {
		return err
	}
	if rec == nil && found == 0 {
		return fmt.Errorf("publish %s in %s: %w", id, where(netns), ErrNotFound)
	}
	if err := p.cleanupChains(ipt, netns); err != nil {
		return err
	}
	if rec != nil {
		if err := p.restoreIfLast(netns, id, rec.PrevRouteLocalnet, recs); err != nil {
			return err
		}
		return p.removeRecord(id)
	}
	return nil
}

// restoreIfLast writes prev back to route_localnet when no other publish
// of netns remains.
func (p *Publisher) restoreIfLast(netns, id, prev string, recs []Record) error {
	if prev == "" {
		return nil
	}
	for _, r := range recs {
		if r.Spec.ID != id && r.Spec.Netns == netns && r.Spec.Loopback() {
			return nil
		}
	}
	if err := p.o.Sysctl.Set(netns, RouteLocalnet, prev); err != nil {
		if ownchain.NotExist(err) && netns != "" {
			return nil // the namespace is gone, and its sysctl with it
		}
		return fmt.Errorf("restoring %s=%s in %s: %w", RouteLocalnet, prev, where(netns), err)
	}
	return nil
}

// remove deletes id's rules and the chains left empty (rollback path).
func (p *Publisher) remove(ipt IPTables, netns, id string) error {
	if _, err := p.removeTagged(ipt, netns, func(tag string) bool { return tag == CommentPrefix+id }); err != nil {
		return err
	}
	return p.cleanupChains(ipt, netns)
}

// ourChains lists publish's chains present in the nat table.
func ourChains(ipt IPTables) ([]string, error) {
	chains, err := ipt.ListChains(Table)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range chains {
		if strings.HasPrefix(c, ChainPrefix) {
			out = append(out, c)
		}
	}
	return out, nil
}

// removeTagged deletes the rules in publish's chains whose comment match
// accepts (an untagged rule counts as "" ) and returns how many it deleted.
func (p *Publisher) removeTagged(ipt IPTables, netns string, match func(tag string) bool) (int, error) {
	chains, err := ourChains(ipt)
	if err != nil {
		return 0, fmt.Errorf("listing nat chains in %s: %w", where(netns), err)
	}
	n := 0
	var errs []error
	for _, c := range chains {
		lines, err := ipt.List(Table, c)
		if err != nil {
			if !ownchain.NotExist(err) {
				errs = append(errs, fmt.Errorf("listing %s in %s: %w", c, where(netns), err))
			}
			continue
		}
		for _, l := range lines {
			r, ok := ownchain.ParseRule(l)
			if !ok || r.Chain != c || !match(r.Comment) {
				continue
			}
			if err := ipt.Delete(Table, c, r.Args...); err != nil && !ownchain.NotExist(err) {
				errs = append(errs, fmt.Errorf("deleting -A %s %s in %s: %w", c, ownchain.Join(r.Args), where(netns), err))
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// cleanupChains removes each of publish's chains that is empty, with its
// jumps; not found is done.
func (p *Publisher) cleanupChains(ipt IPTables, netns string) error {
	var errs []error
	for _, c := range Chains {
		if _, err := owned(c.Chain, c.Builtin).RemoveIfEmpty(ipt); err != nil {
			errs = append(errs, fmt.Errorf("in %s: %w", where(netns), err))
		}
	}
	return errors.Join(errs...)
}

// Sweep removes every publish in each of namespaces and in every namespace
// a record names: all rules in publish's chains (tagged or not), the
// chains and jumps, route_localnet restored from the records, and the
// records. It returns the IDs removed (with " (netns NAME)" outside the
// caller's namespace). A namespace that no longer exists has nothing left
// in it: its records are dropped.
func (p *Publisher) Sweep(ctx context.Context, namespaces ...string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	recs, err := p.records()
	if err != nil {
		return nil, err
	}
	nss := slices.Clone(namespaces)
	for _, r := range recs {
		if !slices.Contains(nss, r.Spec.Netns) {
			nss = append(nss, r.Spec.Netns)
		}
	}
	var removed []string
	var errs []error
	for _, ns := range nss {
		if err := ctx.Err(); err != nil {
			return removed, errors.Join(append(errs, err)...)
		}
		var nsRecs []Record
		for _, r := range recs {
			if r.Spec.Netns == ns {
				nsRecs = append(nsRecs, r)
			}
		}
		ids, err := p.sweepNetns(ns, nsRecs)
		for _, id := range ids {
			if ns != "" {
				id += " (netns " + ns + ")"
			}
			removed = append(removed, id)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

func (p *Publisher) sweepNetns(ns string, recs []Record) ([]string, error) {
	if ns != "" {
		if len(recs) > 0 && !p.o.NetnsExists(ns) {
			var errs []error
			var ids []string
			for _, r := range recs {
				errs = append(errs, p.removeRecord(r.Spec.ID))
				ids = append(ids, r.Spec.ID+" (namespace gone, record dropped)")
			}
			return ids, errors.Join(errs...)
		}
	}
	ipt, err := p.o.IPTables(ns)
	if err != nil {
		return nil, fmt.Errorf("opening iptables in %s: %w", where(ns), err)
	}
	seen := map[string]bool{}
	if _, err := p.removeTagged(ipt, ns, func(tag string) bool {
		seen[strings.TrimPrefix(tag, CommentPrefix)] = true
		return true
	}); err != nil {
		return nil, err
	}
	if err := p.cleanupChains(ipt, ns); err != nil {
		return nil, err
	}
	var ids []string
	prev := ""
	for _, r := range recs {
		seen[r.Spec.ID] = true
		if r.PrevRouteLocalnet != "" {
			prev = r.PrevRouteLocalnet
		}
	}
	if prev != "" {
		if err := p.o.Sysctl.Set(ns, RouteLocalnet, prev); err != nil {
			return nil, fmt.Errorf("restoring %s=%s in %s: %w", RouteLocalnet, prev, where(ns), err)
		}
	}
	var errs []error
	for _, r := range recs {
		errs = append(errs, p.removeRecord(r.Spec.ID))
	}
	for id := range seen {
		if id == "" {
			id = "(untagged rule)"
		}
		ids = append(ids, "publish-"+id)
	}
	sort.Strings(ids)
	return ids, errors.Join(errs...)
}

// List returns the records of the publishes that exist (oldest first).
func (p *Publisher) List() ([]Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.records()
}

func (p *Publisher) records() ([]Record, error) {
	names, err := statefile.List(p.o.StateDir)
	if err != nil {
		return nil, fmt.Errorf("reading publish records: %w", err)
	}
	var out []Record
	for _, name := range names {
		var r Record
		if err := statefile.Read(p.o.StateDir, name, &r); err != nil || r.Spec.ID != name {
			continue // not ours or torn: Sweep scans the kernel anyway
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

func (p *Publisher) writeRecord(r Record) error {
	if err := statefile.Write(p.o.StateDir, r.Spec.ID, r); err != nil {
		return fmt.Errorf("writing publish record: %w", err)
	}
	return nil
}

func (p *Publisher) removeRecord(id string) error {
	if err := statefile.Remove(p.o.StateDir, id); err != nil {
		return fmt.Errorf("removing publish record: %w", err)
	}
	return nil
}

// newIPTables is the default factory: the machine's first iptables backend
// (IPv4), each call run on a thread inside the namespace.
func newIPTables(ns string) (IPTables, error) {
	bs := ownchain.DetectBackends()
	if len(bs) == 0 {
		return nil, errors.New("no iptables found on PATH")
	}
	return ownchain.NewFactory()(ns, bs[0], false)
}
