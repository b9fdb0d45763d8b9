//go:build !linux

package netfault

import "github.com/vishvananda/netlink"

func shapeClass(int, int, Spec) netlink.Class { return nil }

func shapeLeaf(int, int, Spec) netlink.Qdisc { return nil }

func ingressFilter(int, int, Spec) (netlink.Filter, error) { return nil, errUnsupported }

func mirredTarget(netlink.Filter) int { return 0 }
