//go:build !linux

package container

// DefaultRlimits leaves the limits to podman where they cannot be read.
func DefaultRlimits() []Rlimit { return nil }
