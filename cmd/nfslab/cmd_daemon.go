package main

import "github.com/spf13/cobra"

// newDaemonCmds is a placeholder until its commands land.
func newDaemonCmds(g *globals) []*cobra.Command { return nil }
