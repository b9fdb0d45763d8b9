package mount

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Resolver finds the addresses the kernel needs: it cannot resolve host
// names itself, and NFSv4 wants the client's own address for callbacks.
type Resolver interface {
	// LookupAddr resolves host (a name or an IP literal) to one address,
	// IPv4 preferred.
	LookupAddr(ctx context.Context, host string) (netip.Addr, error)
	// SourceAddr returns the local address the kernel would use to reach
	// dst (what `ip route get DST` prints as src).
	SourceAddr(ctx context.Context, dst netip.Addr) (netip.Addr, error)
}

// NetResolver resolves with the Go resolver and finds source addresses with
// the UDP-connect trick: connect(2) on a UDP socket picks the route and the
// source address without sending a packet.
type NetResolver struct{}

func (NetResolver) LookupAddr(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolving NFS server %q: %w", host, err)
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("resolving NFS server %q: no addresses", host)
	}
	return addrs[0], nil
}

func (NetResolver) SourceAddr(ctx context.Context, dst netip.Addr) (netip.Addr, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", netip.AddrPortFrom(dst, 2049).String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding the local address that reaches %s: %w", dst, err)
	}
	defer c.Close()
	ap, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding the local address that reaches %s: %w", dst, err)
	}
	return ap.Addr().Unmap(), nil
}

// SplitSource splits an NFS source "host:/export" (or "[v6addr]:/export").
func SplitSource(source string) (host, export string, err error) {
	i := strings.LastIndex(source, ":/")
	if i <= 0 {
		return "", "", fmt.Errorf("NFS source %q is not SERVER:/EXPORT", source)
	}
	host, export = source[:i], source[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host == "" || strings.ContainsAny(host, " ,") {
		return "", "", fmt.Errorf("NFS source %q has a bad server part %q", source, host)
	}
	return host, export, nil
}

// ResolveNFS fills in addr= from the source's server (unless given) and,
// for NFSv4, clientaddr= from the local address that reaches it.
func ResolveNFS(ctx context.Context, r Resolver, source string, o NFSOptions) (NFSOptions, error) {
	host, _, err := SplitSource(source)
	if err != nil {
		return o, err
	}
	if !o.Addr.IsValid() {
		if o.Addr, err = r.LookupAddr(ctx, host); err != nil {
			return o, err
		}
	}
	if o.MajorVersion() == 4 && !o.ClientAddr.IsValid() {
		if o.ClientAddr, err = r.SourceAddr(ctx, o.Addr); err != nil {
			return o, err
		}
	}
	return o, o.Validate()
}

// MountNFS resolves o for source, then mounts source on target with the
// fstype o selects ("nfs4" or "nfs"). It returns the options used.
// Equivalent to: `mount -t nfs4 -o OPTIONS,addr=A,clientaddr=C SOURCE TARGET`.
func MountNFS(ctx context.Context, m Mounter, r Resolver, source, target string, o NFSOptions) (NFSOptions, error) {
	if err := o.Validate(); err != nil {
		return o, err
	}
	o, err := ResolveNFS(ctx, r, source, o)
	if err != nil {
		return o, err
	}
	return o, m.Mount(ctx, source, target, o.FSType(), o.Elements())
}
