package main

import "github.com/spf13/cobra"

// newDetectCmds is a placeholder until its commands land.
func newDetectCmds(g *globals) []*cobra.Command { return nil }
