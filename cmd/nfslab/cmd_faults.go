package main

import "github.com/spf13/cobra"

// newFaultCmds is a placeholder until its commands land.
func newFaultCmds(g *globals) []*cobra.Command { return nil }
