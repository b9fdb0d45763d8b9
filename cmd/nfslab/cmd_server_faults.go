package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfslab/nfslab/pkg/client"
	"github.com/nfslab/nfslab/pkg/daemon"
	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

// newServerFaultCmds returns the nfs-server subcommands that make nfslab's
// own server fail: restart, unexport, export, expire-clients, fill,
// unfill, eio, eio-off. They act on the netns server the shared flags
// name (--netns, --subnet, --export-dir), through the daemon when one
// answers on --socket (the server machine's, over a forwarded socket: the
// daemon then switches a fault with --for off itself), else in this
// process.
func newServerFaultCmds(g *globals, f *nfsServerFlags) []*cobra.Command {
	var down time.Duration
	// undoCmd names the command that switches a fault off again.
	undoCmd := map[nfsserver.ServerFault]string{nfsserver.FaultUnexport: "export", nfsserver.FaultFill: "unfill", nfsserver.FaultEIO: "eio-off"}
	// target picks where the fault is switched: the daemon answering on
	// --socket (remote), else the netns server in this process (local).
	// A socket the user named must answer.
	target := func(cmd *cobra.Command) (remote *client.Daemon, local *nfsserver.NetnsServer, err error) {
		if f.kind != nfsserver.KindNetns {
			return nil, nil, usage(fmt.Errorf("%s needs --kind netns: an external server is not nfslab's to break", cmd.CommandPath()))
		}
		d, err := client.Dial(cmd.Context(), g.socket)
		switch {
		case err == nil:
			return d, nil, nil
		case !errors.Is(err, client.ErrNoDaemon) || g.socketNamed():
			return nil, nil, err
		}
		srv, err := f.server(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		return nil, srv.(*nfsserver.NetnsServer), nil
	}
	// viaDaemon switches fault on or off through the daemon, which
	// switches it off again after d itself.
	viaDaemon := func(cmd *cobra.Command, dmn *client.Daemon, fault nfsserver.ServerFault, on bool, t nfsserver.FaultTarget, d time.Duration) error {
		defer dmn.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
		defer cancel()
		t0 := time.Now()
		r, err := dmn.NFSServerFault(ctx, daemonapi.NFSServerFaultRequest{Netns: f.netns, Fault: string(fault), On: on,
			For: duration.Duration(d), Path: t.Path, Blocks: t.Blocks})
		if err != nil {
			if errors.Is(err, netfault.ErrInvalid) {
				return usage(err)
			}
			return err
		}
		state := "off"
		if on {
			state = "on"
		}
		fmt.Fprintf(g.stdout, "%s: %s %s via daemon at %s (%s)", r.Netns, fault, state, g.socket, time.Since(t0).Round(time.Millisecond))
		if !r.Until.IsZero() {
			fmt.Fprintf(g.stdout, ", until %s: the daemon switches it off", r.Until.Format(time.RFC3339))
		}
		fmt.Fprintln(g.stdout)
		return nil
	}
	// switchFor switches fault on, waits d (0: leaves it on) and switches
	// it off again, also when the wait is interrupted: no fault is left
	// behind by a Ctrl-C.
	switchFor := func(cmd *cobra.Command, s *nfsserver.NetnsServer, fault nfsserver.ServerFault, t nfsserver.FaultTarget, d time.Duration) error {
		ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout+d)
		defer cancel()
		t0 := time.Now()
		if err := s.Fault(ctx, fault, true, t); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s: %s on (%s)\n", s.Config().Name, fault, time.Since(t0).Round(time.Millisecond))
		if d == 0 {
			return nil
		}
		var waitErr error
		select {
		case <-time.After(d):
		case <-ctx.Done():
			waitErr = ctx.Err()
		}
		// Off with its own bound: the command's context may be cancelled.
		octx, ocancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), f.timeout)
		defer ocancel()
		t1 := time.Now()
		if err := s.Fault(octx, fault, false, nfsserver.FaultTarget{}); err != nil {
			return errors.Join(waitErr, fmt.Errorf("switching %s off: %w", fault, err))
		}
		fmt.Fprintf(g.stdout, "%s: %s off after %s (%s)\n", s.Config().Name, fault, t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
		return waitErr
	}
	// on switches fault on for d (0: until switched off) where target says.
	on := func(cmd *cobra.Command, fault nfsserver.ServerFault, t nfsserver.FaultTarget, d time.Duration) error {
		dmn, s, err := target(cmd)
		if err != nil {
			return err
		}
		if dmn != nil {
			return viaDaemon(cmd, dmn, fault, true, t, d)
		}
		err = switchFor(cmd, s, fault, t, d)
		if errors.Is(err, nfsserver.ErrInvalid) {
			return usage(err)
		}
		return err
	}
	restart := &cobra.Command{Use: "restart", Args: subNoArgs,
		Short: "Stop knfsd and start it again after --down: clients meet the grace period and reclaim",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if down < 0 {
				return usage(fmt.Errorf("--down %s must not be negative", down))
			}
			// Stop and start in one step even when down is 0.
			return on(cmd, nfsserver.FaultStop, nfsserver.FaultTarget{}, max(down, time.Millisecond))
		}}
	restart.Flags().DurationVar(&down, "down", 0, "how long knfsd stays stopped")
	// onFor builds a command that switches fault on, for --for or until
	// its opposite command (undo) switches it off; t is the fault's target
	// (the eio flags fill it), checked before anything is done.
	onFor := func(use, short string, fault nfsserver.ServerFault, forHelp, undo string, t *nfsserver.FaultTarget) *cobra.Command {
		var d time.Duration
		c := &cobra.Command{Use: use, Args: subNoArgs, Short: short,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if d < 0 {
					return usage(fmt.Errorf("--for %s must not be negative", d))
				}
				if err := t.Validate(fault); err != nil {
					return usage(err)
				}
				if err := on(cmd, fault, *t, d); err != nil {
					return err
				}
				if d == 0 {
					fmt.Fprintf(g.stdout, "%s with: nfslab nfs-server %s --netns %s%s\n", undo, undoCmd[fault], f.netns, socketArg(g))
				}
				return nil
			}}
		c.Flags().DurationVar(&d, "for", 0, forHelp)
		return c
	}
	// off builds the command that switches fault off; done says what it did.
	off := func(use, short string, fault nfsserver.ServerFault, done func(*nfsserver.NetnsServer)) *cobra.Command {
		return &cobra.Command{Use: use, Args: subNoArgs, Short: short,
			RunE: func(cmd *cobra.Command, _ []string) error {
				dmn, s, err := target(cmd)
				if err != nil {
					return err
				}
				if dmn != nil {
					return viaDaemon(cmd, dmn, fault, false, nfsserver.FaultTarget{}, 0)
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
				defer cancel()
				if err := s.Fault(ctx, fault, false, nfsserver.FaultTarget{}); err != nil {
					return err
				}
				done(s)
				return nil
			}}
	}
	unexport := onFor("unexport", "Remove the export (clients get ESTALE); with --for, export it again after that long",
		nfsserver.FaultUnexport, "export again after this long (0: stay unexported)", "export it again", &nfsserver.FaultTarget{})
	export := off("export", "Export the server's directory again (after unexport)", nfsserver.FaultUnexport,
		func(s *nfsserver.NetnsServer) {
			fmt.Fprintf(g.stdout, "%s: exported %s\n", s.Config().Name, s.Config().ExportDir)
		})
	expire := &cobra.Command{Use: "expire-clients", Args: subNoArgs,
		Short: "Make knfsd forget every client's state (/proc/fs/nfsd/clients/*/ctl): clients must reclaim",
		RunE: func(cmd *cobra.Command, _ []string) error {
			dmn, s, err := target(cmd)
			if err != nil {
				return err
			}
			if dmn != nil {
				return viaDaemon(cmd, dmn, nfsserver.FaultExpireClients, true, nfsserver.FaultTarget{}, 0)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			ids, err := s.ExpireClients(ctx)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				fmt.Fprintf(g.stdout, "%s: no client has state\n", s.Config().Name)
				return nil
			}
			fmt.Fprintf(g.stdout, "%s: expired client(s) %s\n", s.Config().Name, strings.Join(ids, ", "))
			return nil
		}}
	fill := onFor("fill", "Fill the size-bounded export (start --export-size) so writes get ENOSPC; with --for, empty it again after that long",
		nfsserver.FaultFill, "empty the export again after this long (0: stay full)", "empty it again", &nfsserver.FaultTarget{})
	unfill := off("unfill", "Remove the ballast nfs-server fill wrote", nfsserver.FaultFill, func(*nfsserver.NetnsServer) {})
	var eioTarget nfsserver.FaultTarget
	eio := onFor("eio", "Make the server's disk fail with EIO on a file (--path) or sectors (--blocks) of the ext4 export (start --export-fs ext4); with --for, mend it after that long",
		nfsserver.FaultEIO, "mend the disk after this long (0: stay failing)", "mend it", &eioTarget)
	eio.Flags().StringVar(&eioTarget.Path, "path", "", "file in the export (relative to it) whose sectors fail")
	eio.Flags().StringVar(&eioTarget.Blocks, "blocks", "", "512-byte sectors FIRST-LAST or FIRST- that fail: of --path's file, else of the export device")
	eioOff := off("eio-off", "Map the whole export device to its disk again (after eio)", nfsserver.FaultEIO,
		func(s *nfsserver.NetnsServer) { fmt.Fprintf(g.stdout, "%s: eio off\n", s.Config().Name) })
	return []*cobra.Command{restart, unexport, export, expire, fill, unfill, eio, eioOff}
}

// netnsServerFault returns the daemon's NFSServerFaultFunc: the netns
// server named netns on host, with nfslab's defaults otherwise (as
// `nfs-server start`).
func netnsServerFault(host nfsserver.Host) daemon.NFSServerFaultFunc {
	return func(ctx context.Context, netns string, f nfsserver.ServerFault, on bool, t nfsserver.FaultTarget) error {
		s, err := nfsserver.NewNetns(nfsserver.NetnsConfig{Name: netns}, host)
		if err != nil {
			return err
		}
		return s.Fault(ctx, f, on, t)
	}
}

// socketArg is the --socket flag to repeat in a hint, when the user gave
// one.
func socketArg(g *globals) string {
	switch {
	case !g.socketSet:
		return ""
	case g.socket == "":
		return " --socket="
	}
	return " --socket " + g.socket
}
