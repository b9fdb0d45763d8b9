package main

import "github.com/spf13/cobra"

// newFaultfsCmds is a placeholder until its commands land.
func newFaultfsCmds(g *globals) []*cobra.Command { return nil }
