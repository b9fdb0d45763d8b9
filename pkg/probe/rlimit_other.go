//go:build !linux

package probe

func noCoreDump(int) {}
