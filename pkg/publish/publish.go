package publish

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nfslab/nfslab/internal/ownchain"
)

// Names of nfslab's kernel objects.
const (
	// Table is the only table publish adds rules to.
	Table = "nat"
	// ChainOut holds the DNAT for locally generated traffic (nat OUTPUT,
	// the path of a mount of 127.0.0.1:/...), ChainPre the same DNAT for
	// traffic arriving from elsewhere (nat PREROUTING, for completeness, as
	// netavark does), ChainPost the MASQUERADE of the loopback source.
	ChainOut  = "NFSLAB-PUBLISH-OUT"
	ChainPre  = "NFSLAB-PUBLISH-PRE"
	ChainPost = "NFSLAB-PUBLISH-POST"
	// ChainPrefix starts every chain of publish's.
	ChainPrefix = "NFSLAB-PUBLISH-"
	// CommentPrefix starts the comment on every publish rule:
	// nfslab:publish-<id>.
	CommentPrefix = "nfslab:publish-"
	// JumpComment marks the jumps from the built-in chains.
	JumpComment = "nfslab:publish"
	// DefaultStateDir keeps one record per publish (the previous
	// route_localnet above all).
	DefaultStateDir = "/run/nfslab/publish"
	// RouteLocalnet is the sysctl that lets 127.0.0.0/8 leave lo.
	RouteLocalnet = "net.ipv4.conf.all.route_localnet"
	// LoopbackNet is the source MASQUERADE rewrites.
	LoopbackNet = "127.0.0.0/8"
)

// Chains lists publish's chains with the built-in chain that jumps to each,
// in the order they are created: ChainOut first, so that listings (and
// netfault's Diagnose, which names the first DNAT it finds) show the rule
// local traffic really goes through. Rules and jumps are added in the
// reverse order (the MASQUERADE before the DNAT, so a rewritten packet
// never leaves with a loopback source).
var Chains = []struct{ Chain, Builtin string }{
	{ChainOut, "OUTPUT"},
	{ChainPre, "PREROUTING"},
	{ChainPost, "POSTROUTING"},
}

// ErrInvalid marks bad input (a usage error at the CLI).
var ErrInvalid = errors.New("invalid publish")

// ErrNotFound: no publish with that ID.
var ErrNotFound = errors.New("publish not found")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// Spec is one published port. Equivalent to podman's
// `-p FROM_ADDR:FROM_PORT:TO_PORT` seen from the namespace Netns, with the
// container at To.
type Spec struct {
	// ID names the publish in the kernel (nfslab:publish-ID); empty: a
	// random one.
	ID string `json:"id"`
	// Netns is the namespace of the client (/run/netns/NAME); "" is the
	// caller's own.
	Netns string `json:"netns,omitempty"`
	// From is the published address and port (127.0.0.1:2049).
	From netip.AddrPort `json:"from"`
	// To is the server's address and port.
	To netip.AddrPort `json:"to"`
	// Proto is tcp (the default) or udp.
	Proto string `json:"proto,omitempty"`
}

// WithDefaults fills Proto and a random ID.
func (s Spec) WithDefaults() Spec {
	if s.Proto == "" {
		s.Proto = "tcp"
	}
	if s.ID == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		s.ID = hex.EncodeToString(b)
	}
	return s
}

// Validate names the bad value.
func (s Spec) Validate() error {
	if !idRE.MatchString(s.ID) {
		return invalid("id %q must be 1-40 of [a-z0-9-], starting with a letter or digit", s.ID)
	}
	if strings.ContainsAny(s.Netns, "/ \t\n") || s.Netns == "." || s.Netns == ".." {
		return invalid("netns %q is not a namespace name", s.Netns)
	}
	if s.Proto != "tcp" && s.Proto != "udp" {
		return invalid("proto %q must be tcp or udp", s.Proto)
	}
	for _, e := range []struct {
		what string
		ap   netip.AddrPort
	}{{"published address", s.From}, {"server address", s.To}} {
		if !e.ap.IsValid() || e.ap.Port() == 0 {
			return invalid("%s %q must be ADDRESS:PORT with a port 1-65535", e.what, e.ap)
		}
		if !e.ap.Addr().Is4() || e.ap.Addr().IsUnspecified() {
			// There is no route_localnet for ::1: the kernel never routes
			// a loopback IPv6 destination off lo, so a v6 publish cannot
			// be made like podman's.
			return invalid("%s %s must be a specific IPv4 address (IPv6 publishes are not supported: ::1 cannot leave lo)", e.what, e.ap)
		}
	}
	if s.To.Addr().IsLoopback() {
		return invalid("server address %s is a loopback address: the DNAT must lead out of the namespace", s.To)
	}
	if s.From == s.To {
		return invalid("published address %s is the server's own address", s.From)
	}
	return nil
}

// Loopback reports whether the published address is on 127.0.0.0/8: then
// route_localnet is needed.
func (s Spec) Loopback() bool { return s.From.Addr().IsLoopback() }

// Comment is the tag on each of the publish's rules.
func (s Spec) Comment() string { return CommentPrefix + s.ID }

// Rule is one iptables rule in the nat table.
type Rule struct {
	Chain string
	Args  []string
}

// String renders the rule as an iptables command line.
func (r Rule) String() string {
	return "iptables -t nat -A " + r.Chain + " " + ownchain.Join(r.Args)
}

// Rules returns the rules of the publish, in the order they are added.
//
// Equivalent to:
//
//	iptables -t nat -A NFSLAB-PUBLISH-POST -s 127.0.0.0/8 -d TO/32 -p tcp -m tcp --dport TOPORT -m comment --comment nfslab:publish-ID -j MASQUERADE
//	iptables -t nat -A NFSLAB-PUBLISH-PRE -d FROM/32 -p tcp -m tcp --dport FROMPORT -m comment --comment nfslab:publish-ID -j DNAT --to-destination TO:TOPORT
//	iptables -t nat -A NFSLAB-PUBLISH-OUT (the same DNAT)
func (s Spec) Rules() []Rule {
	p := s.Proto
	dnat := []string{"-d", s.From.Addr().String() + "/32", "-p", p, "-m", p, "--dport", strconv.Itoa(int(s.From.Port())),
		"-m", "comment", "--comment", s.Comment(), "-j", "DNAT", "--to-destination", s.To.String()}
	masq := []string{"-s", LoopbackNet, "-d", s.To.Addr().String() + "/32", "-p", p, "-m", p, "--dport", strconv.Itoa(int(s.To.Port())),
		"-m", "comment", "--comment", s.Comment(), "-j", "MASQUERADE"}
	return []Rule{{ChainPost, masq}, {ChainPre, dnat}, {ChainOut, dnat}}
}

// JumpArgs is the rule in a built-in chain that jumps to chain.
func JumpArgs(chain string) []string {
	return ownchain.Chain{Name: chain, Comment: JumpComment}.JumpArgs()
}

// owned returns publish's chain as an owned chain of the nat table.
func owned(chain, builtin string) ownchain.Chain {
	return ownchain.Chain{Table: Table, Name: chain, Builtin: builtin, Comment: JumpComment}
}

// Plan returns what Publish does, as commands (for --dry-run and docs).
func (s Spec) Plan() []string {
	var out []string
	if s.Netns != "" {
		out = append(out, "# in network namespace "+s.Netns)
	}
	for _, c := range Chains {
		out = append(out, "iptables -t nat -N "+c.Chain+" (if missing)")
	}
	for _, r := range s.Rules() {
		out = append(out, r.String())
	}
	for _, c := range slices.Backward(Chains) {
		out = append(out, "iptables -t nat -I "+c.Builtin+" 1 "+ownchain.Join(JumpArgs(c.Chain))+" (unless already first)")
	}
	if s.Loopback() {
		out = append(out, "sysctl -w "+RouteLocalnet+"=1 (previous value recorded and restored)")
	}
	return out
}
