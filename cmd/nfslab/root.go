package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// globals are the options every command shares.
type globals struct {
	stdout, stderr io.Writer
	socket         string // daemon socket
	socketSet      bool   // --socket given: the daemon there must answer
	logLevel       string
	level          slog.Level // logLevel parsed
	logger         *slog.Logger
	// root is nfslab's state root from RootEnv ("" is the host's,
	// cleanup.DefaultRoot): where runs mount faultfs and record their
	// children, and what heal --all sweeps.
	root string
}

const defaultSocket = "/run/nfslab/nfslab.sock"

// socketNamed says whether the user named a daemon socket (--socket with a
// path): then a command that talks to a daemon fails when none answers
// there, instead of acting on this machine; --socket= asks for the direct
// path.
func (g *globals) socketNamed() bool { return g.socketSet && g.socket != "" }

// RootEnv moves nfslab's state root (faultfs mounts, child and mount
// records, mount and NFS server directories) below another directory;
// tests set it so that their heal --all sweeps only what they made.
const RootEnv = "NFSLAB_ROOT"

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "nfslab",
		Short:         "A local fault-injection lab for NFS storage and the network under it",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
				return usage(fmt.Errorf("log level %q is not one of debug, info, warn, error", g.logLevel))
			}
			g.level = lvl
			g.socketSet = cmd.Flags().Changed("socket")
			g.logger = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl}))
			if r := os.Getenv(RootEnv); r != "" {
				// Absolute: heal compares it with mountinfo's paths.
				var err error
				if g.root, err = filepath.Abs(r); err != nil {
					return usage(fmt.Errorf("%s %q: %w", RootEnv, r, err))
				}
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	root.PersistentFlags().StringVar(&g.socket, "socket", defaultSocket, "daemon socket; when given, a daemon must answer there (--socket= acts in-process)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")

	zeebe := &cobra.Command{Use: "zeebe", Short: "Run a Zeebe broker and load against it"}
	addAll(zeebe, newZeebeContainerCmds(g), newZeebeLoadCmds(g))

	addAll(root,
		newFaultCmds(g),   // drop, reject, unreachable, heal, status, watch
		newDaemonCmds(g),  // daemon
		newStorageCmds(g), // mount, umount, doctor
		newFaultfsCmds(g), // faultfs, probe
		[]*cobra.Command{zeebe},
		newDetectCmds(g),   // detect
		newScenarioCmds(g), // run, collect
		newVMCmds(g),       // vm
		newExportCmds(g),   // export chaos-mesh
	)
	return root
}

func addAll(parent *cobra.Command, groups ...[]*cobra.Command) {
	for _, cmds := range groups {
		for _, c := range cmds {
			// Usage errors from subcommands' args validation map to exit 2.
			if c.Args != nil {
				args := c.Args
				c.Args = func(cmd *cobra.Command, a []string) error { return usage(args(cmd, a)) }
			}
			parent.AddCommand(c)
		}
	}
}

// noArgs is cobra.NoArgs with a clearer message.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " "))
	}
	return nil
}
