//go:build !linux

package publish

import "errors"

var errNotLinux = errors.New("publishing a port needs Linux (iptables nat, route_localnet)")

type procSysctl struct{}

func (procSysctl) Get(string, string) (string, error) { return "", errNotLinux }
func (procSysctl) Set(string, string, string) error   { return errNotLinux }
