//go:build !linux

package netfault

type netlinkConntrack struct{}

func (netlinkConntrack) Flows(string, bool) ([]Flow, error) { return nil, errUnsupported }
