package main

import "github.com/spf13/cobra"

// newStorageCmds is a placeholder until its commands land.
func newStorageCmds(g *globals) []*cobra.Command { return nil }
