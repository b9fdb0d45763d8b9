package main

import "github.com/spf13/cobra"

// newScenarioCmds is a placeholder until its commands land.
func newScenarioCmds(g *globals) []*cobra.Command { return nil }
