package netfault

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Kind is what a fault does to matching traffic.
type Kind string

const (
	// KindDrop silently discards matching packets (iptables -j DROP), fully
	// or with a probability (-m statistic --mode random).
	KindDrop Kind = "drop"
	// KindReject fails matching traffic fast (-j REJECT, tcp-reset for tcp).
	KindReject Kind = "reject"
	// KindUnreachable installs a route of RouteType to Dst through netlink.
	KindUnreachable Kind = "unreachable"
	// KindDelay delays matching packets (netem: delay, jitter, loss,
	// duplicate, corrupt, reorder) in nfslab's own htb class; see shape.go.
	KindDelay Kind = "delay"
	// KindLimit bounds the rate of matching packets (an htb class rate).
	KindLimit Kind = "limit"
)

// Counted reports whether faults of kind k have packet counters.
func (k Kind) Counted() bool { return Spec{Kind: k}.Counted() }

// Kinds lists every fault kind, in documentation order.
var Kinds = []Kind{KindDrop, KindReject, KindUnreachable, KindDelay, KindLimit}

// Direction selects which built-in chains a rule fault hooks.
type Direction string

const (
	DirOut  Direction = "out"  // OUTPUT: to Dst:Port (from local port LocalPort)
	DirIn   Direction = "in"   // INPUT: from Dst, source port Port (to local port LocalPort)
	DirBoth Direction = "both" // both of the above
)

// RouteType is the kernel route type of an unreachable fault.
type RouteType string

const (
	RouteUnreachable RouteType = "unreachable" // EHOSTUNREACH
	RouteBlackhole   RouteType = "blackhole"   // EINVAL on connect, silently discarded
	RouteProhibit    RouteType = "prohibit"    // EACCES
)

// Defaults applied by WithDefaults.
const (
	DefaultPort     = 2049
	DefaultProto    = "tcp"
	DefaultLifetime = 15 * time.Minute
	// MaxLifetime bounds how long any fault may live, so that a forgotten
	// fault still goes away on its own.
	MaxLifetime = 7 * 24 * time.Hour
)

// Spec is what the user asks for. The zero values of optional fields mean
// "default"; call WithDefaults before Validate when the caller wants them.
// The yaml tags are a scenario step's fault (pkg/scenario), whose step
// gives the kind, lifetime and label.
type Spec struct {
	Kind Kind `json:"kind" yaml:"-"`
	// Dst is an address or CIDR prefix, IPv4 or IPv6.
	Dst string `json:"dst" yaml:"dst"`
	// Port is the peer's port: the NFS (or other) server's for a fault on
	// a client; see LocalPort for one on the server. 0 matches any port.
	Port int `json:"port,omitempty" yaml:"port,omitempty"`
	// LocalPort is this host's own port, for a fault on the server's side
	// (the server drops traffic of its NFS port to or from a client):
	// OUTPUT --sport, INPUT --dport. 0 matches any local port. Drop and
	// reject only; with it set, Port (the client's, ephemeral) defaults to
	// 0: see DefaultPortFor.
	LocalPort int `json:"local_port,omitempty" yaml:"local_port,omitempty"`
	// Proto is "tcp" or "udp"; rule faults only.
	Proto string `json:"proto,omitempty" yaml:"proto,omitempty"`
	// Dir is out, in or both; rule faults only.
	Dir Direction `json:"dir,omitempty" yaml:"dir,omitempty"`
	// Prob is the probability of dropping a matching packet, 0 < Prob <= 1.
	// 0 (unset) and 1 both mean every packet. Drop only.
	Prob float64 `json:"prob,omitempty" yaml:"prob,omitempty"`
	// RouteType is the route type of an unreachable fault.
	RouteType RouteType `json:"route_type,omitempty" yaml:"route_type,omitempty"`
	// For is the fault's lifetime; 0 means DefaultLifetime.
	For time.Duration `json:"for,omitempty" yaml:"-"`
	// Label is free text shown in status.
	Label string `json:"label,omitempty" yaml:"-"`
	// Netns names a network namespace (/run/netns/NAME) to act in; empty
	// means the caller's namespace.
	Netns string `json:"netns,omitempty" yaml:"netns,omitempty"`
	// MatchOriginal matches the connection's original destination
	// (conntrack --ctorigdst/--ctorigdstport) so a fault aimed at a DNATed
	// address such as localhost:2049 still bites. Rule faults only.
	MatchOriginal bool `json:"match_original,omitempty" yaml:"match_original,omitempty"`
	// Delay is the added one-way delay of a delay fault (netem delay).
	Delay time.Duration `json:"delay,omitempty" yaml:"delay,omitempty"`
	// Jitter varies Delay by up to this much either way (netem jitter).
	Jitter time.Duration `json:"jitter,omitempty" yaml:"jitter,omitempty"`
	// Correlation is how much each packet's delay depends on the previous
	// one's, in percent (0-100).
	Correlation float64 `json:"correlation,omitempty" yaml:"correlation,omitempty"`
	// Loss, Duplicate, Corrupt and Reorder are netem's probabilities in
	// percent (0-100) of a delay fault: lose, send twice, flip a bit, send
	// at once (ahead of delayed ones; needs Delay).
	Loss      float64 `json:"loss,omitempty" yaml:"loss,omitempty"`
	Duplicate float64 `json:"duplicate,omitempty" yaml:"duplicate,omitempty"`
	Corrupt   float64 `json:"corrupt,omitempty" yaml:"corrupt,omitempty"`
	Reorder   float64 `json:"reorder,omitempty" yaml:"reorder,omitempty"`
	// Rate is the bound of a limit fault ("1mbit", tc's units).
	Rate Rate `json:"rate,omitempty" yaml:"rate,omitempty"`
	// Burst is how many bytes a limit fault lets through at once above
	// Rate ("32kb"); 0 lets htb choose (rate/HZ + MTU).
	Burst Size `json:"burst,omitempty" yaml:"burst,omitempty"`
	// Force allows a fault that covers every destination (a /0 prefix)
	// in the caller's own namespace, where it would cut the machine off
	// (SSH included). Not needed with Netns.
	Force bool `json:"force,omitempty" yaml:"-"`
}

// DefaultPortFor is the Port a caller fills in when the user gave none:
// DefaultPort (the NFS server's) for a client-side fault, 0 (any) when
// the fault names its LocalPort, as the peer of a server is a client on
// an ephemeral port.
func DefaultPortFor(s Spec) int {
	if s.LocalPort != 0 {
		return 0
	}
	return DefaultPort
}

// WithDefaults returns s with defaults filled in for unset fields.
func (s Spec) WithDefaults() Spec {
	if s.Kind == KindDrop || s.Kind == KindReject {
		s.Proto = cmp.Or(s.Proto, DefaultProto)
		s.Dir = cmp.Or(s.Dir, DirOut)
	}
	if s.IsShape() {
		s.Proto = cmp.Or(s.Proto, DefaultProto)
		s.Dir = cmp.Or(s.Dir, DirOut)
	}
	if s.Kind == KindUnreachable {
		s.RouteType = cmp.Or(s.RouteType, RouteUnreachable)
	}
	s.For = cmp.Or(s.For, DefaultLifetime)
	return s
}

// IsRule reports whether the fault is made of iptables rules (drop, reject)
// rather than a route.
func (s Spec) IsRule() bool { return s.Kind == KindDrop || s.Kind == KindReject }

// IsShape reports whether the fault shapes traffic (delay, limit): an htb
// class of nfslab's on the egress device, classified by nfslab's mangle
// rule.
func (s Spec) IsShape() bool { return s.Kind == KindDelay || s.Kind == KindLimit }

// Selects reports whether the fault selects traffic by port, protocol and
// direction (every kind but unreachable).
func (s Spec) Selects() bool { return s.IsRule() || s.IsShape() }

// Counted reports whether the fault has packet counters that prove it
// bites: rule counters for drop and reject, the shaping class's counters
// for delay and limit. Routes have none.
func (s Spec) Counted() bool { return s.Selects() }

// KernelExpiry reports whether the kernel itself stops the fault at its
// expiry (-m time --datestop on the rule that selects its traffic), with
// no nfslab process running. Routes and the ingress (ifb) half of a
// shaping fault have no such clock: the daemon's timer or a reaper heals
// them.
func (s Spec) KernelExpiry() bool {
	return s.IsRule() || (s.IsShape() && s.Dir == DirOut)
}

// Prefix parses Dst as an address or prefix; an address becomes a /32 or
// /128 prefix. An IPv6 zone (fe80::1%eth0) is not part of the prefix: see
// Zone.
func (s Spec) Prefix() (netip.Prefix, error) {
	if strings.Contains(s.Dst, "/") {
		p, err := netip.ParsePrefix(s.Dst)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("destination %q is not an address or CIDR prefix: %w", s.Dst, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s.Dst)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("destination %q is not an address or CIDR prefix", s.Dst)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Zone returns the zone of an IPv6 destination address (fe80::1%eth0 gives
// "eth0"), the interface a rule fault is bound to; "" when there is none.
func (s Spec) Zone() string {
	if strings.Contains(s.Dst, "/") {
		return ""
	}
	a, err := netip.ParseAddr(s.Dst)
	if err != nil {
		return ""
	}
	return a.Zone()
}

var (
	labelRE = regexp.MustCompile(`^[A-Za-z0-9 ._:/@+=-]{0,64}$`)
	netnsRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	// ifaceRE is what the kernel accepts as an interface name (IFNAMSIZ
	// 16 with the NUL), less what a shell or iptables would mangle.
	ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)
	digits  = regexp.MustCompile(`^[0-9]+$`)
)

// ErrInvalid wraps every validation error so that callers can map it to a
// usage error (exit status 2, HTTP 400).
var ErrInvalid = errors.New("invalid fault")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Validate reports the first problem with s, naming the bad value. It
// expects defaults to have been applied where the caller wants them.
func (s Spec) Validate() error {
	switch s.Kind {
	case KindDrop, KindReject, KindUnreachable, KindDelay, KindLimit:
	default:
		return invalid("unknown fault kind %q (want drop, reject, unreachable, delay or limit)", s.Kind)
	}
	if s.Dst == "" {
		return invalid("destination is required (--dst ADDR[/CIDR])")
	}
	pfx, err := s.Prefix()
	if err != nil {
		return invalid("%v", err)
	}
	if pfx.Bits() == 0 && s.Netns == "" && !s.Force && (!s.Selects() || (s.Port == 0 && s.LocalPort == 0)) {
		return invalid("destination %s covers every address (the default route): in this namespace the fault would cut the machine off, SSH included; aim it at a namespace (--netns NAME) or add --force", s.Dst)
	}
	if z := s.Zone(); z != "" {
		if !s.Selects() {
			return invalid("destination %q has a zone: an unreachable route applies to every interface (drop the %%%s)", s.Dst, z)
		}
		if !ifaceRE.MatchString(z) || digits.MatchString(z) || z == "." || z == ".." {
			return invalid("zone %q of destination %q is not an interface name", z, s.Dst)
		}
	}
	if math.IsNaN(s.Prob) || math.IsInf(s.Prob, 0) || s.Prob < 0 || s.Prob > 1 {
		return invalid("probability %v is out of range (want 0 < p <= 1)", s.Prob)
	}
	if s.Prob != 0 && s.Kind != KindDrop {
		return invalid("probability %v applies only to drop faults", s.Prob)
	}
	if s.For < 0 {
		return invalid("lifetime %v is negative", s.For)
	}
	if s.For > MaxLifetime {
		return invalid("lifetime %v exceeds the maximum of %v", s.For, MaxLifetime)
	}
	if !labelRE.MatchString(s.Label) {
		return invalid("label %q must be at most 64 letters, digits, spaces or ._:/@+=-", s.Label)
	}
	if s.Netns != "" && (!netnsRE.MatchString(s.Netns) || s.Netns == "." || s.Netns == "..") {
		return invalid("network namespace name %q is not valid", s.Netns)
	}
	if err := s.validateShape(); err != nil {
		return err
	}
	if s.Selects() {
		if s.Port < 0 || s.Port > 65535 {
			return invalid("port %d is out of range (0-65535)", s.Port)
		}
		if s.LocalPort < 0 || s.LocalPort > 65535 {
			return invalid("local port %d is out of range (0-65535)", s.LocalPort)
		}
		if s.LocalPort != 0 && s.IsShape() {
			return invalid("--local-port %d applies to drop and reject, not %s", s.LocalPort, s.Kind)
		}
		if s.LocalPort != 0 && s.MatchOriginal {
			return invalid("--local-port %d and --match-original do not combine: the original destination is the server's; on the server, match its port with --local-port alone", s.LocalPort)
		}
		switch s.Proto {
		case "tcp", "udp":
		default:
			return invalid("protocol %q is not supported (want tcp or udp)", s.Proto)
		}
		switch s.Dir {
		case DirOut, DirIn, DirBoth:
		default:
			return invalid("direction %q is not valid (want out, in or both)", s.Dir)
		}
		if s.RouteType != "" {
			return invalid("route type %q applies only to unreachable faults", s.RouteType)
		}
		if s.IsShape() && s.MatchOriginal {
			return invalid("--match-original applies to drop and reject, not %s", s.Kind)
		}
		if s.MatchOriginal && s.Dir == DirIn {
			return invalid("--match-original applies to outgoing traffic (dir out or both)")
		}
		return nil
	}
	switch s.RouteType {
	case RouteUnreachable, RouteBlackhole, RouteProhibit:
	default:
		return invalid("route type %q is not valid (want unreachable, blackhole or prohibit)", s.RouteType)
	}
	if s.Port != 0 || s.LocalPort != 0 || s.Proto != "" || s.Dir != "" || s.MatchOriginal {
		return invalid("port, local port, proto, dir and match-original do not apply to unreachable routes")
	}
	return nil
}
