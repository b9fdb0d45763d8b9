package netfault

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os/exec"
	"path"
	"strconv"
	"strings"

	"github.com/nfslab/nfslab/internal/ownchain"
)

// Causes reported by Diagnose.
const (
	CauseNATBeforeFilter = "nat-before-filter"
	CauseNoConnection    = "no-connection"
	CauseUserspaceProxy  = "userspace-proxy"
	CauseLocalIO         = "localio"
	CauseEarlierAccept   = "earlier-accept"
	CauseSportMistake    = "sport-mistake"
	CauseLocalRoute      = "local-route"
	CauseLocalPort       = "local-port"
)

// Causes lists every cause Diagnose may report, for validation of
// scenarios that expect one.
func Causes() []string {
	return []string{CauseNATBeforeFilter, CauseNoConnection, CauseUserspaceProxy,
		CauseLocalIO, CauseEarlierAccept, CauseSportMistake, CauseLocalRoute, CauseLocalPort, CauseShapeOffRoute, CauseShapeClassMissing}
}

// knownProxies are userspace port forwarders that terminate a connection
// on a local port and open a new one to the container.
var knownProxies = map[string]bool{
	"rootlessport": true, "rootlessport-ch": true, "docker-proxy": true,
	"slirp4netns": true, "pasta": true, "pasta.avx2": true, "passt": true,
	"gvproxy": true, "vpnkit": true, "conmon-rs": false,
}

// Diagnose explains why fault id may match no traffic. Each Finding names
// what it saw and how to fix it; an empty result means nothing suspicious
// was found.
func (m *Manager) Diagnose(ctx context.Context, netns, id string) ([]Finding, error) {
	m.mu.Lock()
	inv, err := m.scan(ctx, netns)
	m.mu.Unlock()
	if inv == nil {
		return nil, err
	}
	if inv.handle != nil {
		defer inv.handle.Close()
	}
	defer inv.closeShape()
	e := inv.entries[id]
	if e == nil || !e.live() {
		return nil, fmt.Errorf("fault %s: %w", id, ErrNotFound)
	}
	f := e.fault(netns)
	pfx, perr := f.Spec.Prefix()
	if perr != nil {
		return nil, fmt.Errorf("fault %s has an unreadable destination: %w", id, perr)
	}
	local := m.localPrefixes(inv)
	isLocal := false
	for _, l := range local {
		if l.Overlaps(pfx) {
			isLocal = true
		}
	}
	var out []Finding
	if !f.Spec.Selects() {
		if isLocal {
			out = append(out, Finding{Cause: CauseLocalRoute,
				Detail: fmt.Sprintf("%s is a local address: the kernel's local table is consulted before main, so the %s route never applies", f.Spec.Dst, f.Spec.RouteType),
				Fix:    "aim the route at the remote address the traffic goes to, or use a drop/reject rule with --match-original"})
		}
		out = append(out, m.localioFinding(isLocal, f.Spec.Dst)...)
		return out, nil
	}
	port := f.Spec.Port
	var ipt IPTables
	if len(e.rules) > 0 {
		ipt = e.rules[0].ipt
	}
	if f.Spec.IsShape() { // not in nfslab's filter chains: see shape_diagnose.go
		out, ipt = append(out, m.shapeFindings(inv, e, f.Spec, pfx, isLocal)...), nil
	}
	if ipt != nil {
		out = append(out, earlierAccept(ipt, f.Spec)...)
		out = append(out, sportMistakes(ipt, port)...)
	}
	// A fault on the server's own port (LocalPort) matches its replies:
	// a NAT on the way out of a client does not apply to them.
	if !f.Spec.MatchOriginal && f.Spec.Dir != DirIn && f.Spec.LocalPort == 0 {
		// The same DNAT may show in three places: iptables' nat table,
		// the nftables ruleset (iptables-nft's tables included) and the
		// conntrack entries of connections it rewrote. An iptables rule
		// is named as iptables prints it and not again from nft.
		var owned map[string]bool
		if ipt != nil {
			out = append(out, natRewrites(ipt, pfx, port, isLocal)...)
			if !m.legacyBackend(e.rules[0].backend) {
				owned = natChains(ipt)
			}
		}
		out = append(out, m.nftFindings(ctx, netns, nftTarget{pfx: pfx, port: port, proto: f.Spec.Proto, isLocal: isLocal}, owned)...)
		out = append(out, m.conntrackFindings(netns, pfx, port, f.Spec.Proto)...)
	}
	socks := m.sockets(netns, pfx.Addr().Is6())
	if f.Spec.Proto == "tcp" && !f.Spec.MatchOriginal && socks != nil {
		out = append(out, connectionFindings(socks, f.Spec, pfx, netns)...)
	}
	if isLocal {
		out = append(out, m.proxyFindings(socks, pfx, port)...)
	}
	out = append(out, m.localioFinding(isLocal, f.Spec.Dst)...)
	return out, nil
}

// connectionFindings reports a TCP fault that selects no connection of
// the namespace: none to Dst's Port, or only ones in which Port is this
// host's own, the mistake of a fault aimed from the server (its clients
// connect from ephemeral ports; LocalPort selects the server's).
func connectionFindings(socks []Socket, s Spec, pfx netip.Prefix, netns string) []Finding {
	var served []Socket
	for _, c := range socks {
		if c.State == tcpListen || !pfx.Contains(c.Remote.Addr()) {
			continue
		}
		if (s.Port == 0 || int(c.Remote.Port()) == s.Port) && (s.LocalPort == 0 || int(c.Local.Port()) == s.LocalPort) {
			return nil
		}
		if s.LocalPort == 0 && s.Port != 0 && int(c.Local.Port()) == s.Port {
			served = append(served, c)
		}
	}
	if len(served) > 0 {
		c := served[0]
		return []Finding{{Cause: CauseLocalPort,
			Detail: fmt.Sprintf("port %d is this host's own: %s connects to %s from its port %d (%d such connection(s) in %s, /proc/net/tcp*), so this host is the server, and --port matches the peer's port, here the client's ephemeral one",
				s.Port, c.Remote.Addr(), c.Local, c.Remote.Port(), len(served), nsLabel(netns)),
			Fix: fmt.Sprintf("re-apply with --local-port %d --port 0 (in a scenario: local_port: %d, port: 0)", s.Port, s.Port)}}
	}
	what := fmt.Sprintf("to %s port %d", s.Dst, s.Port)
	if s.LocalPort != 0 {
		what = fmt.Sprintf("from %s to local port %d", s.Dst, s.LocalPort)
		if s.Port != 0 {
			what = fmt.Sprintf("from %s port %d to local port %d", s.Dst, s.Port, s.LocalPort)
		}
	}
	return []Finding{{Cause: CauseNoConnection,
		Detail: fmt.Sprintf("no TCP connection %s exists in %s (/proc/net/tcp*)", what, nsLabel(netns)),
		Fix:    "check which address the client really uses (e.g. `mount -t nfs4` shows addr=...; a name may resolve elsewhere) and aim the fault at it"}}
}

// legacyBackend reports whether the backend called name is an
// iptables-legacy one, whose tables nft does not show.
func (m *Manager) legacyBackend(name string) bool {
	for _, b := range m.opts.Backends {
		if b.Name == name {
			return b.Legacy
		}
	}
	return false
}

// natChains returns the chains `iptables -t nat` lists: with the nft
// backend these are chains of nft's ip (ip6) nat table.
func natChains(ipt IPTables) map[string]bool {
	chains, err := ipt.ListChains("nat")
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, c := range chains {
		out[c] = true
	}
	return out
}

// nftFindings names the nft rules that rewrite the fault's destination
// before filter OUTPUT; rules in iptables' own nat chains (owned) are left
// to natRewrites.
func (m *Manager) nftFindings(ctx context.Context, netns string, t nftTarget, owned map[string]bool) []Finding {
	nft := m.opts.NFTables
	if nft == nil {
		nft = nftCommand{}
	}
	b, err := nft.Ruleset(ctx, netns)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			m.log.Debug("nft not installed: nftables NAT not checked", "netns", netns)
		} else {
			m.log.Warn("reading the nftables ruleset", "netns", netns, "err", err)
		}
		return nil
	}
	rs, err := parseNFTRuleset(b)
	if err != nil {
		m.log.Warn("reading the nftables ruleset", "netns", netns, "err", err)
		return nil
	}
	var out []Finding
	for _, r := range rs.rewrites(t) {
		if (r.Family == "ip" || r.Family == "ip6") && r.Table == "nat" && owned[r.Chain] {
			continue
		}
		show := ownchain.Command(netns, "nft", []string{"-a", "list", "chain", r.Family, r.Table, r.Chain})
		aim := "aim the fault at " + r.To
		if r.To == xtUnknown {
			aim = "aim the fault at the address that rule names"
		}
		out = append(out, Finding{Cause: CauseNATBeforeFilter,
			Detail: fmt.Sprintf("nft rule `%s` (table %s %s, chain %s, handle %d, reached from hook output via %s) rewrites %s port %d to %s before filter OUTPUT sees it; `iptables -t nat` does not list it (podman 5's netavark nftables driver, docker's nftables mode and native nft rulesets publish ports this way)",
				r.Rule, r.Family, r.Table, r.Chain, r.Handle, strings.Join(r.Path, " -> "), t.pfx, t.port, r.To),
			Fix: fmt.Sprintf("re-apply with --match-original (matches conntrack's original destination), or %s; see the rule with `%s`", aim, show)})
	}
	return out
}

// conntrackFindings reads the namespace's conntrack table for connections
// to the fault's destination that another address answered.
func (m *Manager) conntrackFindings(netns string, pfx netip.Prefix, port int, proto string) []Finding {
	ct := m.opts.Conntrack
	if ct == nil {
		ct = netlinkConntrack{}
	}
	flows, err := ct.Flows(netns, pfx.Addr().Is6())
	if err != nil {
		m.log.Debug("reading conntrack", "netns", netns, "err", err)
		return nil
	}
	return conntrackFindings(translations(flows, pfx, port, proto), netns, proto)
}

func nsLabel(netns string) string {
	if netns == "" {
		return "this network namespace"
	}
	return "network namespace " + netns
}

// localPrefixes returns the namespace's own addresses plus loopback.
func (m *Manager) localPrefixes(inv *inventory) []netip.Prefix {
	out := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if inv.handle == nil {
		return out
	}
	addrs, err := inv.handle.AddrList(nil, familyAll)
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			ip = ip.Unmap()
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	return out
}

// earlierAccept finds rules above nfslab's jump in the built-in chain that
// end the chain for matching packets (ACCEPT, RETURN or a jump elsewhere).
func earlierAccept(ipt IPTables, s Spec) []Finding {
	var out []Finding
	chains := []string{ChainOut}
	if s.Dir == DirIn {
		chains = []string{ChainIn}
	} else if s.Dir == DirBoth {
		chains = append(chains, ChainIn)
	}
	for _, chain := range chains {
		builtin := builtinFor(chain)
		lines, err := ipt.List(TableFilter, builtin)
		if err != nil {
			continue
		}
		var above []ownchain.Rule
		jumped := false
		for _, l := range lines {
			r, ok := ownchain.ParseRule(l)
			if !ok {
				continue
			}
			if r.Target() == chain {
				jumped = true
				break
			}
			above = append(above, r)
		}
		if !jumped {
			out = append(out, Finding{Cause: CauseEarlierAccept,
				Detail: fmt.Sprintf("the jump from %s to %s is missing", builtin, chain),
				Fix:    "re-apply the fault; nfslab re-inserts its jump at position 1"})
			continue
		}
		for i, r := range above {
			if t := r.Target(); t != "ACCEPT" && t != "RETURN" {
				continue
			}
			out = append(out, Finding{Cause: CauseEarlierAccept,
				Detail: fmt.Sprintf("rule %d of %s comes before nfslab's jump and ends the chain for what it matches: -A %s %s", i+1, builtin, builtin, joinArgs(r.Args)),
				Fix:    "re-apply the fault (nfslab moves its jump back to position 1) or remove that rule"})
		}
	}
	return out
}

// sportMistakes finds foreign rules that match the same port as source and
// destination, as in the seed's `--dport 2049 --sport 2049`: the client's
// source port is ephemeral, so such a rule never matches its traffic.
func sportMistakes(ipt IPTables, port int) []Finding {
	if port == 0 {
		return nil
	}
	p := strconv.Itoa(port)
	var out []Finding
	for _, builtin := range []string{"OUTPUT", "INPUT"} {
		lines, err := ipt.List(TableFilter, builtin)
		if err != nil {
			continue
		}
		for _, l := range lines {
			r, ok := ownchain.ParseRule(l)
			if !ok || r.Opt["--sport"] != p || r.Opt["--dport"] != p {
				continue
			}
			out = append(out, Finding{Cause: CauseSportMistake,
				Detail: fmt.Sprintf("-A %s %s matches source port %s as well: a client connects from an ephemeral port, so this rule never matches its traffic", builtin, joinArgs(r.Args), p),
				Fix:    fmt.Sprintf("drop --sport %s from that rule (nfslab's client-side rules match only --dport %s outgoing)", p, p)})
		}
	}
	return out
}

// natRewrites finds nat-table DNAT/REDIRECT rules for the port: nat OUTPUT
// runs before filter OUTPUT, so a filter rule on the original destination
// sees the rewritten one and never matches.
func natRewrites(ipt IPTables, pfx netip.Prefix, port int, isLocal bool) []Finding {
	chains, err := ipt.ListChains("nat")
	if err != nil {
		return nil
	}
	var out []Finding
	for _, c := range chains {
		if c == "PREROUTING" || c == "POSTROUTING" || c == "INPUT" {
			continue
		}
		lines, err := ipt.List("nat", c)
		if err != nil {
			continue
		}
		for _, l := range lines {
			r, ok := ownchain.ParseRule(l)
			if !ok || (r.Target() != "DNAT" && r.Target() != "REDIRECT") {
				continue
			}
			if dp, ok := r.Opt["--dport"]; ok && port != 0 && dp != strconv.Itoa(port) {
				continue
			}
			if d, ok := r.Opt["-d"]; ok {
				dp, err := (Spec{Dst: d}).Prefix()
				if err != nil || !dp.Overlaps(pfx) {
					continue
				}
			} else if r.Opt["--dst-type"] == "LOCAL" && !isLocal {
				continue
			}
			to := cmp.Or(r.Opt["--to-destination"], "local port "+r.Opt["--to-ports"])
			out = append(out, Finding{Cause: CauseNATBeforeFilter,
				Detail: fmt.Sprintf("nat rule `-t nat -A %s %s` rewrites %s port %d to %s before filter OUTPUT sees it (podman/netavark and docker publish ports this way)", c, joinArgs(r.Args), pfx, port, to),
				Fix:    "re-apply with --match-original (matches conntrack's original destination), or aim the fault at " + to})
		}
	}
	return out
}

func (m *Manager) sockets(netns string, v6 bool) []Socket {
	var all []Socket
	ok := false
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := m.opts.NetFile(netns, name)
		if err != nil {
			continue
		}
		s, err := ParseProcNetTCP(b)
		if err != nil {
			m.log.Warn("parsing /proc/net/"+name, "err", err)
			continue
		}
		ok = true
		all = append(all, s...)
	}
	if !ok {
		return nil
	}
	if all == nil {
		all = []Socket{}
	}
	return all
}

// proxyFindings names the process behind a local listener on the port when
// it is a known userspace proxy.
func (m *Manager) proxyFindings(socks []Socket, pfx netip.Prefix, port int) []Finding {
	var out []Finding
	for _, s := range socks {
		if s.State != tcpListen || (port != 0 && int(s.Local.Port()) != port) {
			continue
		}
		a := s.Local.Addr()
		if !a.IsUnspecified() && !pfx.Contains(a) {
			continue
		}
		pid, comm := m.socketOwner(s.Inode)
		if comm == "" || !knownProxies[comm] {
			continue
		}
		out = append(out, Finding{Cause: CauseUserspaceProxy,
			Detail: fmt.Sprintf("%s is served by the userspace proxy %s (pid %d): it accepts the connection locally and opens its own to the container, so packets to %s port %d never leave this host", s.Local, comm, pid, pfx, port),
			Fix:    "aim the fault at the container's address and port (the proxy's outgoing connection), or at the proxy's namespace"})
	}
	return out
}

// socketOwner finds the process holding socket inode by reading
// /proc/PID/fd links from RootFS.
func (m *Manager) socketOwner(inode uint64) (int, string) {
	if inode == 0 {
		return 0, ""
	}
	want := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	procs, err := fs.ReadDir(m.opts.RootFS, "proc")
	if err != nil {
		return 0, ""
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := path.Join("proc", p.Name(), "fd")
		fds, err := fs.ReadDir(m.opts.RootFS, fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := fs.ReadLink(m.opts.RootFS, path.Join(fdDir, fd.Name()))
			if err != nil || target != want {
				continue
			}
			comm, _ := fs.ReadFile(m.opts.RootFS, path.Join("proc", p.Name(), "comm"))
			return pid, strings.TrimSpace(string(comm))
		}
	}
	return 0, ""
}

// localioFinding: with LOCALIO on, a client whose server is a knfsd on
// this kernel, in any network namespace (a netns server, a container),
// reads, writes and commits through the server's files, not the network.
// A local destination or a knfsd on this kernel is enough to suspect it;
// the mount's frozen READ/WRITE/COMMIT counts prove it
// (nfsserver.LocalIOBypass).
func (m *Manager) localioFinding(isLocal bool, dst string) []Finding {
	b, err := fs.ReadFile(m.opts.RootFS, "sys/module/nfs/parameters/localio_enabled")
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(b)), "Y") {
		return nil
	}
	where := dst + " is local"
	if !isLocal {
		if !m.kernelRunsNFSD() {
			return nil
		}
		where = "this kernel runs knfsd (a server in another network namespace or a container counts: LOCALIO crosses namespaces)"
	}
	return []Finding{{Cause: CauseLocalIO,
		Detail: fmt.Sprintf("NFS LOCALIO is enabled (/sys/module/nfs/parameters/localio_enabled=Y) and %s: a client of that server reads, writes and commits the server's files directly, bypassing the network; only metadata RPCs cross it (mountstats: READ/WRITE/COMMIT counts stand still while the data changes)", where),
		Fix:    "echo N > /sys/module/nfs/parameters/localio_enabled before mounting (nfslab: --disable-localio), or run the NFS server on another kernel (a VM or another machine)"}}
}

// kernelRunsNFSD reports whether knfsd is in this kernel (built in or
// loaded): /proc/filesystems lists nfsd or /sys/module/nfsd exists.
func (m *Manager) kernelRunsNFSD() bool {
	if b, err := fs.ReadFile(m.opts.RootFS, "proc/filesystems"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == "nfsd" {
				return true
			}
		}
	}
	_, err := fs.Stat(m.opts.RootFS, "sys/module/nfsd")
	return err == nil
}

func joinArgs(a []string) string {
	q := make([]string, len(a))
	for i, s := range a {
		q[i] = ownchain.Quote(s)
	}
	return strings.Join(q, " ")
}
