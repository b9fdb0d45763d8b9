package netfault

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// NFTables reads the nftables ruleset of a network namespace. nfslab reads
// it as JSON from `nft -j list ruleset` rather than decoding netlink
// bytecode (github.com/google/nftables): nft's JSON (libnftables-json(5))
// already names the matches and the NAT statement with their operands,
// which is what a finding prints, while bytecode would have to be mapped
// back from registers and offsets by a second decoder of our own.
type NFTables interface {
	// Ruleset returns the ruleset of netns ("" = the caller's own) as
	// printed by `nft -j list ruleset`.
	Ruleset(ctx context.Context, netns string) ([]byte, error)
}

// nftFilterPriority is the priority of the iptables filter table's hooks
// (NF_IP_PRI_FILTER), where nfslab's rules live: a nat chain of lower
// priority rewrites the destination before they see the packet.
const nftFilterPriority = 0

// nftRewrite is one nftables rule that rewrites the destination (dnat or
// redirect) of traffic a fault aims at, in a nat chain reached from the
// output hook before the filter table.
type nftRewrite struct {
	Family string // ip, ip6, inet
	Table  string
	Chain  string
	Handle int
	// Path is the chain path from the base chain: "OUTPUT", or
	// "OUTPUT -> NETAVARK-HOSTPORT-DNAT -> nv_..._dnat".
	Path []string
	// Verb is dnat or redirect; To is where it sends the traffic
	// ("10.88.0.5:2049", "local port 3000"); Rule is the rule rendered in
	// nft syntax as far as nfslab understands it.
	Verb, To, Rule string
	// Owned is set when the rule's table is an iptables-nft table (ip nat,
	// ip6 nat): `iptables -t nat` lists it too and names it better.
	Owned bool
}

// nftTarget is what a fault matches, for evaluating nft matches.
type nftTarget struct {
	pfx     netip.Prefix
	port    int // 0 = any
	proto   string
	isLocal bool
}

type nftChainObj struct {
	Family string          `json:"family"`
	Table  string          `json:"table"`
	Name   string          `json:"name"`
	Handle int             `json:"handle"`
	Type   string          `json:"type"`
	Hook   string          `json:"hook"`
	Prio   json.RawMessage `json:"prio"`
}

type nftRuleObj struct {
	Family  string                       `json:"family"`
	Table   string                       `json:"table"`
	Chain   string                       `json:"chain"`
	Handle  int                          `json:"handle"`
	Expr    []map[string]json.RawMessage `json:"expr"`
	Comment string                       `json:"comment"`
}

type nftSetObj struct {
	Family string            `json:"family"`
	Table  string            `json:"table"`
	Name   string            `json:"name"`
	Elem   []json.RawMessage `json:"elem"`
}

type nftTableKey struct{ family, table string }

type nftChainKey struct {
	nftTableKey
	chain string
}

// nftRuleset is a parsed `nft -j list ruleset`.
type nftRuleset struct {
	chains []nftChainObj
	rules  map[nftChainKey][]nftRuleObj
	sets   map[nftChainKey][]json.RawMessage // by set or map name
}

// parseNFTRuleset parses the JSON nft prints for `list ruleset`.
func parseNFTRuleset(b []byte) (*nftRuleset, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parsing nft -j list ruleset: %w", err)
	}
	rs := &nftRuleset{rules: map[nftChainKey][]nftRuleObj{}, sets: map[nftChainKey][]json.RawMessage{}}
	for _, obj := range doc.Nftables {
		for kind, raw := range obj {
			switch kind {
			case "chain":
				var c nftChainObj
				if err := json.Unmarshal(raw, &c); err != nil {
					return nil, fmt.Errorf("parsing nft chain %s: %w", raw, err)
				}
				rs.chains = append(rs.chains, c)
			case "rule":
				var r nftRuleObj
				if err := json.Unmarshal(raw, &r); err != nil {
					return nil, fmt.Errorf("parsing nft rule %s: %w", raw, err)
				}
				k := nftChainKey{nftTableKey{r.Family, r.Table}, r.Chain}
				rs.rules[k] = append(rs.rules[k], r)
			case "set", "map":
				var s nftSetObj
				if err := json.Unmarshal(raw, &s); err != nil {
					return nil, fmt.Errorf("parsing nft %s %s: %w", kind, raw, err)
				}
				rs.sets[nftChainKey{nftTableKey{s.Family, s.Table}, s.Name}] = s.Elem
			}
		}
	}
	return rs, nil
}

// prio reads a chain priority: a number, or one of nft's names.
func (c nftChainObj) prio() (int, bool) {
	if len(c.Prio) == 0 {
		return 0, false
	}
	var n int
	if err := json.Unmarshal(c.Prio, &n); err == nil {
		return n, true
	}
	var s string
	if err := json.Unmarshal(c.Prio, &s); err == nil {
		named := map[string]int{"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
		n, ok := named[s]
		return n, ok
	}
	return 0, false
}

// familyFits reports whether a table family sees the fault's traffic.
func familyFits(family string, v6 bool) bool {
	switch family {
	case "inet":
		return true
	case "ip":
		return !v6
	case "ip6":
		return v6
	}
	return false // arp, bridge, netdev: not the local output path
}

// rewrites lists the dnat and redirect rules of rs that may rewrite the
// target's traffic: in nat chains reached from an output base chain that
// runs before the filter table, along jumps whose matches may match, and
// whose own matches may match. A match nfslab cannot evaluate counts as
// "may match": a finding to check beats a silent miss.
func (rs *nftRuleset) rewrites(t nftTarget) []nftRewrite {
	v6 := t.pfx.Addr().Is6()
	var out []nftRewrite
	seen := map[nftChainKey]bool{}
	for _, base := range rs.chains {
		p, ok := base.prio()
		if base.Hook != "output" || base.Type != "nat" || !ok || p >= nftFilterPriority || !familyFits(base.Family, v6) {
			continue
		}
		tk := nftTableKey{base.Family, base.Table}
		type step struct {
			chain string
			path  []string
		}
		queue := []step{{base.Name, []string{base.Name}}}
		for len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			ck := nftChainKey{tk, s.chain}
			if seen[ck] {
				continue
			}
			seen[ck] = true
			for _, r := range rs.rules[ck] {
				if !rs.mayMatch(tk, r, t) {
					continue
				}
				for _, j := range rs.jumps(tk, r) {
					queue = append(queue, step{j, append(append([]string(nil), s.path...), j)})
				}
				verb, to, ok := natStatement(r, v6)
				if !ok {
					continue
				}
				out = append(out, nftRewrite{Family: r.Family, Table: r.Table, Chain: r.Chain, Handle: r.Handle,
					Path: s.path, Verb: verb, To: to, Rule: renderNFTRule(r)})
			}
		}
	}
	return out
}

// xtUnknown stands for the destination of an iptables-nft DNAT/REDIRECT
// target, which `nft -j` does not print.
const xtUnknown = "the address in its iptables-nft target (`nft -j` does not print it; `nft list` does)"

// natStatement finds a dnat or redirect statement in r that applies to
// the family (in an inet table `dnat ip to` leaves IPv6 alone) and says
// where it sends the traffic.
func natStatement(r nftRuleObj, v6 bool) (verb, to string, ok bool) {
	for _, e := range r.Expr {
		if raw, ok := e["dnat"]; ok {
			var d struct {
				Family string          `json:"family"`
				Addr   json.RawMessage `json:"addr"`
				Port   json.RawMessage `json:"port"`
			}
			_ = json.Unmarshal(raw, &d)
			if (d.Family == "ip" && v6) || (d.Family == "ip6" && !v6) {
				return "", "", false
			}
			addr, port := renderValue(d.Addr), renderValue(d.Port)
			switch {
			case addr == "" && port == "":
				return "dnat", "?", true
			case port == "":
				return "dnat", addr, true
			case strings.Contains(addr, ":") && !strings.HasPrefix(addr, "["):
				return "dnat", "[" + addr + "]:" + port, true
			default:
				return "dnat", addr + ":" + port, true
			}
		}
		if raw, ok := e["xt"]; ok {
			// iptables-nft's compat target: nft -j prints its name only.
			var x struct{ Type, Name string }
			_ = json.Unmarshal(raw, &x)
			if x.Type == "target" && (x.Name == "DNAT" || x.Name == "REDIRECT") {
				return strings.ToLower(x.Name), xtUnknown, true
			}
		}
		if raw, ok := e["redirect"]; ok {
			var d struct {
				Port json.RawMessage `json:"port"`
			}
			_ = json.Unmarshal(raw, &d)
			if p := renderValue(d.Port); p != "" {
				return "redirect", "local port " + p, true
			}
			return "redirect", "the local address (same port)", true
		}
	}
	return "", "", false
}

// jumps returns the chains r may jump or go to, verdict maps included.
func (rs *nftRuleset) jumps(tk nftTableKey, r nftRuleObj) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range []string{"jump", "goto"} {
				if j, ok := x[k].(map[string]any); ok {
					if t, ok := j["target"].(string); ok {
						out = append(out, t)
					}
				}
			}
			if vm, ok := x["vmap"].(map[string]any); ok {
				if name, ok := vm["data"].(string); ok && strings.HasPrefix(name, "@") {
					for _, el := range rs.sets[nftChainKey{tk, name[1:]}] {
						var e any
						if json.Unmarshal(el, &e) == nil {
							walk(e)
						}
					}
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	for _, e := range r.Expr {
		for k, raw := range e {
			if k == "match" {
				continue
			}
			var v any
			if json.Unmarshal(raw, &v) == nil {
				walk(map[string]any{k: v})
			}
		}
	}
	return out
}

// mayMatch evaluates the rule's matches that bear on the fault's traffic:
// destination port, layer-4 protocol, destination address, family and
// `fib daddr type local`. Matches on anything else may match.
func (rs *nftRuleset) mayMatch(tk nftTableKey, r nftRuleObj, t nftTarget) bool {
	v6 := t.pfx.Addr().Is6()
	for _, e := range r.Expr {
		raw, ok := e["match"]
		if !ok {
			continue
		}
		var m struct {
			Op    string          `json:"op"`
			Left  json.RawMessage `json:"left"`
			Right json.RawMessage `json:"right"`
		}
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		var left struct {
			Payload *struct{ Protocol, Field string } `json:"payload"`
			Meta    *struct{ Key string }             `json:"meta"`
			Fib     *struct {
				Result string   `json:"result"`
				Flags  []string `json:"flags"`
			} `json:"fib"`
		}
		if json.Unmarshal(m.Left, &left) != nil {
			continue
		}
		atoms, known := rs.flatten(tk, m.Right)
		neg := m.Op == "!="
		if m.Op != "" && m.Op != "==" && m.Op != "!=" && m.Op != "in" {
			continue // <, >, bitwise: not evaluated
		}
		// test applies a membership result: == needs it, != excludes it.
		test := func(contains, covers bool) bool {
			if !known {
				return true
			}
			if neg {
				return !covers
			}
			return contains
		}
		switch {
		case left.Payload != nil && left.Payload.Field == "dport":
			p := left.Payload.Protocol
			if p != "th" && p != t.proto {
				return false // tcp dport implies the protocol
			}
			if t.port != 0 {
				in := atomsHavePort(atoms, t.port)
				if !test(in, in) {
					return false
				}
			}
		case left.Payload != nil && left.Payload.Field == "daddr" && (left.Payload.Protocol == "ip" || left.Payload.Protocol == "ip6"):
			if (left.Payload.Protocol == "ip6") != v6 {
				return false // ip daddr implies IPv4
			}
			over, covers := atomsOverlap(atoms, t.pfx)
			if !test(over, covers) {
				return false
			}
		case (left.Payload != nil && ((left.Payload.Protocol == "ip" && left.Payload.Field == "protocol") || (left.Payload.Protocol == "ip6" && left.Payload.Field == "nexthdr"))) ||
			(left.Meta != nil && left.Meta.Key == "l4proto"):
			in := atomsHaveProto(atoms, t.proto)
			if !test(in, in) {
				return false
			}
		case left.Meta != nil && left.Meta.Key == "nfproto":
			in := atomsHaveString(atoms, map[bool]string{false: "ipv4", true: "ipv6"}[v6])
			if !test(in, in) {
				return false
			}
		case left.Fib != nil && left.Fib.Result == "type" && len(left.Fib.Flags) == 1 && left.Fib.Flags[0] == "daddr":
			// Only "local" is evaluated: nfslab knows whether the target is local.
			if !known || !atomsHaveString(atoms, "local") {
				continue
			}
			if !test(t.isLocal, t.isLocal) {
				return false
			}
		}
	}
	return true
}

// nftAtom is one element of a flattened match operand: a number, a string
// (address, protocol, fib type), a range or a prefix.
type nftAtom struct {
	num    int64
	isNum  bool
	str    string
	lo, hi *nftAtom
	pfx    netip.Prefix
}

// flatten turns a match's right-hand side (value, anonymous set, named
// @set, range, prefix) into atoms; known is false when any part is
// something nfslab does not evaluate (concatenations, maps, expressions).
func (rs *nftRuleset) flatten(tk nftTableKey, raw json.RawMessage) (atoms []nftAtom, known bool) {
	known = true
	var add func(raw json.RawMessage, depth int)
	add = func(raw json.RawMessage, depth int) {
		raw = bytes.TrimSpace(raw)
		if depth > 8 || len(raw) == 0 {
			known = false
			return
		}
		switch raw[0] {
		case '"':
			var s string
			_ = json.Unmarshal(raw, &s)
			if name, ok := strings.CutPrefix(s, "@"); ok {
				elems, ok := rs.sets[nftChainKey{tk, name}]
				if !ok {
					known = false
				}
				for _, el := range elems {
					add(el, depth+1)
				}
				return
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				atoms = append(atoms, nftAtom{pfx: p.Masked()})
			} else if a, err := netip.ParseAddr(s); err == nil {
				atoms = append(atoms, nftAtom{pfx: netip.PrefixFrom(a, a.BitLen())})
			} else {
				atoms = append(atoms, nftAtom{str: s})
			}
		case '[':
			var list []json.RawMessage
			_ = json.Unmarshal(raw, &list)
			for _, el := range list {
				add(el, depth+1)
			}
		case '{':
			var obj struct {
				Set    json.RawMessage   `json:"set"`
				Range  []json.RawMessage `json:"range"`
				Prefix *struct {
					Addr string `json:"addr"`
					Len  int    `json:"len"`
				} `json:"prefix"`
				Elem *struct {
					Val json.RawMessage `json:"val"`
				} `json:"elem"`
			}
			if json.Unmarshal(raw, &obj) != nil {
				known = false
				return
			}
			switch {
			case obj.Set != nil:
				add(obj.Set, depth+1)
			case obj.Elem != nil:
				add(obj.Elem.Val, depth+1)
			case len(obj.Range) == 2:
				lo, lk := rs.flatten(tk, obj.Range[0])
				hi, hk := rs.flatten(tk, obj.Range[1])
				if !lk || !hk || len(lo) != 1 || len(hi) != 1 {
					known = false
					return
				}
				atoms = append(atoms, nftAtom{lo: &lo[0], hi: &hi[0]})
			case obj.Prefix != nil:
				a, err := netip.ParseAddr(obj.Prefix.Addr)
				if err != nil {
					known = false
					return
				}
				p, err := a.Prefix(obj.Prefix.Len)
				if err != nil {
					known = false
					return
				}
				atoms = append(atoms, nftAtom{pfx: p})
			default:
				known = false
			}
		default:
			n, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				known = false
				return
			}
			atoms = append(atoms, nftAtom{num: n, isNum: true})
		}
	}
	add(raw, 0)
	return atoms, known
}

func (a nftAtom) number() (int64, bool) {
	if a.isNum {
		return a.num, true
	}
	if n, err := strconv.ParseInt(a.str, 10, 64); err == nil {
		return n, true
	}
	return 0, false
}

func atomsHavePort(atoms []nftAtom, port int) bool {
	for _, a := range atoms {
		if n, ok := a.number(); ok && n == int64(port) {
			return true
		}
		if a.lo != nil {
			lo, lok := a.lo.number()
			hi, hok := a.hi.number()
			if lok && hok && lo <= int64(port) && int64(port) <= hi {
				return true
			}
		}
	}
	return false
}

var protoNumbers = map[string]int64{"tcp": 6, "udp": 17, "sctp": 132, "dccp": 33, "udplite": 136}

func atomsHaveProto(atoms []nftAtom, proto string) bool {
	for _, a := range atoms {
		if a.str == proto {
			return true
		}
		if n, ok := a.number(); ok && n == protoNumbers[proto] {
			return true
		}
	}
	return false
}

func atomsHaveString(atoms []nftAtom, s string) bool {
	for _, a := range atoms {
		if a.str == s {
			return true
		}
	}
	return false
}

// atomsOverlap reports whether any atom overlaps pfx, and whether one
// covers all of it.
func atomsOverlap(atoms []nftAtom, pfx netip.Prefix) (overlaps, covers bool) {
	first, last := pfx.Masked().Addr(), lastAddr(pfx)
	for _, a := range atoms {
		switch {
		case a.pfx.IsValid():
			if a.pfx.Overlaps(pfx) {
				overlaps = true
				covers = covers || (a.pfx.Bits() <= pfx.Bits() && a.pfx.Contains(first))
			}
		case a.lo != nil && a.lo.pfx.IsValid() && a.hi.pfx.IsValid():
			lo, hi := a.lo.pfx.Addr(), a.hi.pfx.Addr()
			if lo.BitLen() != first.BitLen() {
				continue
			}
			if !(hi.Less(first) || last.Less(lo)) {
				overlaps = true
				covers = covers || (lo.Compare(first) <= 0 && last.Compare(hi) <= 0)
			}
		}
	}
	return overlaps, covers
}

// lastAddr returns the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// renderValue prints a JSON operand the way nft would, as far as simple
// values go; maps and expressions print as "(map)" or "(expression)".
func renderValue(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	var r func(v any) string
	r = func(v any) string {
		switch x := v.(type) {
		case string:
			return x
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64)
		case []any:
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = r(e)
			}
			return strings.Join(parts, " . ")
		case map[string]any:
			if s, ok := x["set"].([]any); ok {
				parts := make([]string, len(s))
				for i, e := range s {
					parts[i] = r(e)
				}
				return "{ " + strings.Join(parts, ", ") + " }"
			}
			if rg, ok := x["range"].([]any); ok && len(rg) == 2 {
				return r(rg[0]) + "-" + r(rg[1])
			}
			if p, ok := x["prefix"].(map[string]any); ok {
				return r(p["addr"]) + "/" + r(p["len"])
			}
			if e, ok := x["elem"].(map[string]any); ok {
				return r(e["val"])
			}
			if _, ok := x["map"]; ok {
				return "(map)"
			}
			if p, ok := x["payload"].(map[string]any); ok {
				return cmp.Or(r(p["protocol"])+" "+r(p["field"]), "payload")
			}
			if m, ok := x["meta"].(map[string]any); ok {
				return "meta " + r(m["key"])
			}
			if f, ok := x["fib"].(map[string]any); ok {
				flags := ""
				if fl, ok := f["flags"].([]any); ok {
					for _, e := range fl {
						flags += r(e) + " "
					}
				}
				return "fib " + flags + r(f["result"])
			}
			if c, ok := x["ct"].(map[string]any); ok {
				return "ct " + r(c["key"])
			}
			return "(expression)"
		}
		return fmt.Sprint(v)
	}
	return r(v)
}

// renderNFTRule prints a rule in nft's syntax for the statements that
// matter here; others print as their JSON key.
func renderNFTRule(r nftRuleObj) string {
	var parts []string
	for _, e := range r.Expr {
		for k, raw := range e {
			switch k {
			case "match":
				var m struct {
					Op    string          `json:"op"`
					Left  json.RawMessage `json:"left"`
					Right json.RawMessage `json:"right"`
				}
				_ = json.Unmarshal(raw, &m)
				op := ""
				if m.Op != "" && m.Op != "==" && m.Op != "in" {
					op = m.Op + " "
				}
				parts = append(parts, renderValue(m.Left)+" "+op+renderValue(m.Right))
			case "dnat", "snat":
				var d struct {
					Family string          `json:"family"`
					Addr   json.RawMessage `json:"addr"`
					Port   json.RawMessage `json:"port"`
				}
				_ = json.Unmarshal(raw, &d)
				s := k
				if d.Family != "" {
					s += " " + d.Family
				}
				s += " to " + renderValue(d.Addr)
				if p := renderValue(d.Port); p != "" {
					s += ":" + p
				}
				parts = append(parts, s)
			case "redirect":
				var d struct {
					Port json.RawMessage `json:"port"`
				}
				_ = json.Unmarshal(raw, &d)
				s := "redirect"
				if p := renderValue(d.Port); p != "" {
					s += " to :" + p
				}
				parts = append(parts, s)
			case "jump", "goto":
				var j struct {
					Target string `json:"target"`
				}
				_ = json.Unmarshal(raw, &j)
				parts = append(parts, k+" "+j.Target)
			case "counter":
				parts = append(parts, "counter")
			case "xt":
				var x struct{ Type, Name string }
				_ = json.Unmarshal(raw, &x)
				parts = append(parts, "xt "+x.Type+" "+x.Name)
			default:
				parts = append(parts, k)
			}
		}
	}
	return strings.Join(parts, " ")
}
