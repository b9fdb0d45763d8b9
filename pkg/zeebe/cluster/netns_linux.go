package cluster

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsAddr is the first global IPv4 address in the named network
// namespace: a broker's address on podman's bridge. Equivalent to:
//
//	ip -n NETNS -4 -o addr show scope global
func netnsAddr(_ context.Context, name string) (string, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return "", fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return "", fmt.Errorf("netlink in %s: %w", name, err)
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", fmt.Errorf("listing addresses in %s: %w", name, err)
	}
	for _, a := range addrs {
		if a.Scope == unix.RT_SCOPE_UNIVERSE && !a.IP.IsLoopback() {
			return a.IP.String(), nil
		}
	}
	return "", fmt.Errorf("network namespace %s has no global IPv4 address (is the container on a bridge network?)", name)
}
