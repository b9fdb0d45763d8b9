//go:build !linux

package ownchain

import "errors"

// Factory returns an IPTables acting in netns for a backend and family.
type Factory func(netns string, b Backend, v6 bool) (IPTables, error)

var errUnsupported = errors.New("iptables needs Linux")

// NewFactory is Linux-only.
func NewFactory() Factory {
	return func(string, Backend, bool) (IPTables, error) { return nil, errUnsupported }
}

// DetectBackends finds nothing outside Linux.
func DetectBackends() []Backend { return nil }
