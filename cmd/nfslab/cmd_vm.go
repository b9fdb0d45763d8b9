package main

import "github.com/spf13/cobra"

// newVMCmds is a placeholder until its commands land.
func newVMCmds(g *globals) []*cobra.Command { return nil }
