package main

import "github.com/spf13/cobra"

// newZeebeLoadCmds is a placeholder until its commands land.
func newZeebeLoadCmds(g *globals) []*cobra.Command { return nil }
