package main

import "github.com/spf13/cobra"

// newZeebeContainerCmds is a placeholder until its commands land.
func newZeebeContainerCmds(g *globals) []*cobra.Command { return nil }
