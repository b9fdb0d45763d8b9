//go:build !linux

package netfault

import "context"

type nftCommand struct{}

func (nftCommand) Ruleset(context.Context, string) ([]byte, error) { return nil, errUnsupported }
