package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nfslab/nfslab/pkg/export/chaosmesh"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// chaosMeshFlags are the export's flags, named as chaosmesh.Keys.
var chaosMeshFlags = []struct {
	key, usage string
	repeat     bool
}{
	{"namespace", "namespace of the pods under test and of the Workflow (default \"default\")", false},
	{"selector", "labels of the pods under test, the NFS clients: KEY=VALUE[,KEY=VALUE] (required); repeatable", true},
	{"mode", "Chaos Mesh selector mode: one, all, fixed, fixed-percent, random-max-percent (default all)", false},
	{"value", "value of --mode fixed (a count) or fixed-percent, random-max-percent (a percentage)", false},
	{"container", "container name for IOChaos and container-kill (default: the pod's first container); repeatable", true},
	{"volume-path", "mount point of the NFS volume in the container, IOChaos's volumePath (default " + chaosmesh.DefaultVolumePath + ")", false},
	{"server-address", "the NFS server's address as the pods reach it (IP, CIDR or host name): the NetworkChaos externalTargets", false},
	{"server-selector", "labels of the NFS server's pods when it runs in the cluster (instead of --server-address); repeatable", true},
	{"server-namespace", "namespace of the NFS server's pods (default: --namespace)", false},
	{"at", "STEP=OFFSET: start a step that waits on an event Chaos Mesh cannot observe (replay-start, ...) at OFFSET; repeatable", true},
	{"name", "name of the Workflow (default: the scenario's name)", false},
}

func newExportCmds(g *globals) []*cobra.Command {
	export := &cobra.Command{Use: "export", Short: "Write a scenario for another chaos engine (chaos-mesh)"}
	var out string
	var sets []string
	cm := &cobra.Command{
		Use:   "chaos-mesh SCENARIO.yaml",
		Short: "Write a scenario as a Chaos Mesh Workflow with NetworkChaos, IOChaos and PodChaos templates",
		Long: `Write the scenario as a Chaos Mesh Workflow (chaos-mesh.org/v1alpha1): Serial
and Parallel templates follow the timeline, Suspend templates wait;
drop becomes NetworkChaos loss (or a partition that drops, at 100%),
reject and unreachable a partition, faultfs rules IOChaos (errno, latency,
methods, path), restart and restart-target a PodChaos pod-kill, kill a
container-kill, pause and stop a pod-failure. See docs/chaos-mesh.md.

Every object selects its pods by --namespace and --selector (--mode,
--value, --container); the NFS server is --server-address or
--server-selector. --set KEY=VALUE sets the same options (KEY one of the
flag names) or, for any other KEY, overrides a scenario field as in
'nfslab run'.

What Chaos Mesh cannot express (expectations, detectors, ports, byte
ranges, events it cannot observe, ...) is listed in the command's output
and in a comment block at the top of the YAML, never dropped silently.

Without -o the YAML goes to stdout and the list to stderr. Exit status: 0
when written, 1 when nothing in the timeline maps, 2 for an invalid
scenario or options.`,
		Example: `  nfslab export chaos-mesh scenarios/nfs-random-drop-80.yaml \
      --namespace zeebe --selector app=zeebe --server-address 10.0.0.5 -o chaos/
  nfslab export chaos-mesh scenarios/nfs-full-drop.yaml --selector app.kubernetes.io/name=zeebe \
      --server-selector app=nfs-server --server-namespace storage | kubectl apply -f -
  nfslab export chaos-mesh scenarios/nfs-drop-on-replay.yaml --selector app=zeebe \
      --server-address nfs.example.internal --at slow-reads=35s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts chaosmesh.Options
			var overrides []string
			for _, kv := range sets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || !chaosmesh.IsKey(k) {
					overrides = append(overrides, kv) // the scenario's --set reports a bad one
					continue
				}
				if err := opts.Set(k, v); err != nil {
					return usage(fmt.Errorf("--set %s: %w", kv, err))
				}
			}
			for _, f := range chaosMeshFlags {
				if !cmd.Flags().Changed(f.key) {
					continue
				}
				vals := []string{cmd.Flags().Lookup(f.key).Value.String()}
				if f.repeat {
					vals, _ = cmd.Flags().GetStringArray(f.key)
				}
				for _, v := range vals {
					if err := opts.Set(f.key, v); err != nil {
						return usage(fmt.Errorf("--%s: %w", f.key, err))
					}
				}
			}
			return exportChaosMesh(g, args[0], out, overrides, opts)
		},
	}
	fl := cm.Flags()
	for _, f := range chaosMeshFlags {
		if f.repeat {
			fl.StringArray(f.key, nil, f.usage)
		} else {
			fl.String(f.key, "", f.usage)
		}
	}
	fl.StringVarP(&out, "out", "o", "", "write DIR/NAME.workflow.yaml instead of printing the YAML")
	fl.StringArrayVar(&sets, "set", nil, "KEY=VALUE: an option above by its flag name, or a scenario field (target.kind=zeebe); repeatable")
	export.AddCommand(cm)
	return []*cobra.Command{export}
}

func exportChaosMesh(g *globals, path, dir string, overrides []string, opts chaosmesh.Options) error {
	sc, err := scenario.LoadFile(path, overrides...)
	if err != nil {
		if errors.Is(err, scenario.ErrInvalid) {
			return usage(err)
		}
		return err
	}
	res, err := chaosmesh.Export(sc, opts)
	switch {
	case errors.Is(err, chaosmesh.ErrInvalid):
		return usage(err)
	case errors.Is(err, chaosmesh.ErrNothingMaps):
		fmt.Fprint(g.stderr, res.Report())
		return exitError{1, fmt.Errorf("%s: %w; nothing written", path, err)}
	case err != nil:
		return err
	}
	data, err := res.YAML(path)
	if err != nil {
		return err
	}
	if dir == "" {
		if _, err := g.stdout.Write(data); err != nil {
			return err
		}
		fmt.Fprint(g.stderr, res.Report())
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the output directory: %w", err)
	}
	file := filepath.Join(dir, res.FileName())
	// Written whole or not at all: a half file would apply half a timeline.
	tmp, err := os.CreateTemp(dir, "."+res.FileName()+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	fmt.Fprintf(g.stdout, "wrote %s (Workflow %s/%s, %d chaos templates)\n", file, res.Workflow.Metadata.Namespace, res.Workflow.Metadata.Name, chaosmesh.Items(res.Workflow))
	fmt.Fprint(g.stdout, res.Report())
	return nil
}
