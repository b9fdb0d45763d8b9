package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nfslab/nfslab/pkg/detect"
	"github.com/nfslab/nfslab/pkg/journal"
)

// newDetectCmds returns `detect`.
func newDetectCmds(g *globals) []*cobra.Command {
	var (
		asJSON    bool
		only      []string
		custom    []string
		list      bool
		countOnly bool
	)
	cmd := &cobra.Command{
		Use:   "detect FILE|-",
		Short: "Scan a saved log for the failures nfslab knows (post-mortem)",
		Long: `Scan a saved broker, probe or client log (or stdin with "-") and print each
event the detectors find: time (when the log has one), detector name and
the evidence lines (a stack trace or JVM banner is one event).

Built-in detectors: ` + strings.Join(detect.Names(), ", ") + `.
Custom detectors: --custom NAME=REGEX (RE2 syntax); group the lines that
follow with NAME:stack=REGEX, NAME:banner=REGEX or NAME:next3=REGEX.
Exit status is 0 whether or not anything was found.`,
		Example: `  podman logs zeebe 2>&1 | nfslab detect -
  nfslab detect --detector jvm-sigbus,hs-err-file broker.log
  nfslab detect --json --custom 'leader=Transition to LEADER on term (?P<term>\d+)' broker.log`,
		Args: func(cmd *cobra.Command, args []string) error {
			if list {
				return nil
			}
			if len(args) != 1 {
				return fmt.Errorf("%s takes one FILE (or - for stdin), got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dets, err := selectDetectors(only, custom)
			if err != nil {
				return usage(err)
			}
			out := g.stdout
			if list {
				for _, d := range dets {
					fmt.Fprintf(out, "%-24s %s\n", d.Name, d.Description)
				}
				return nil
			}
			var r io.Reader
			source := args[0]
			if source == "-" {
				r, source = cmd.InOrStdin(), "stdin"
			} else {
				f, err := os.Open(source)
				if err != nil {
					return fmt.Errorf("opening log: %w", err)
				}
				defer f.Close()
				r = f
			}
			counts := map[string]int{}
			enc := json.NewEncoder(out)
			enc.SetEscapeHTML(false)
			var werr error
			m, err := detect.New(detect.Options{Detectors: dets, Source: source}, func(h journal.Hit) {
				counts[h.Detector]++
				switch {
				case countOnly:
				case asJSON:
					if err := enc.Encode(h); err != nil && werr == nil {
						werr = err
					}
				default:
					printHit(out, h)
				}
			})
			if err != nil {
				return usage(err)
			}
			if err := m.Scan(r); err != nil {
				return err
			}
			if werr != nil {
				return fmt.Errorf("writing hits: %w", werr)
			}
			if countOnly || (!asJSON && g.logger != nil) {
				summary := summarize(counts)
				if countOnly {
					fmt.Fprintf(out, "%d lines, %s\n", m.Lines(), summary)
				} else {
					g.logger.Info("scanned", "source", source, "lines", m.Lines(), "hits", summary)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print hits as JSON lines (journal detector-hit payloads)")
	f.StringSliceVar(&only, "detector", nil, "run only these built-in detectors (comma-separated or repeated)")
	f.StringArrayVar(&custom, "custom", nil, "add a detector NAME[:stack|:banner|:nextN]=REGEX (repeatable)")
	f.BoolVar(&list, "list", false, "list the detectors and exit")
	f.BoolVar(&countOnly, "count", false, "print only the number of lines and hits per detector")
	return []*cobra.Command{cmd}
}

func selectDetectors(only, custom []string) ([]detect.Detector, error) {
	all := detect.Builtins()
	dets := all
	if len(only) > 0 {
		byName := map[string]detect.Detector{}
		for _, d := range all {
			byName[d.Name] = d
		}
		dets = nil
		for _, n := range only {
			d, ok := byName[strings.TrimSpace(n)]
			if !ok {
				return nil, fmt.Errorf("unknown detector %q; built-ins are %s", n, strings.Join(detect.Names(), ", "))
			}
			dets = append(dets, d)
		}
	}
	for _, c := range custom {
		d, err := detect.ParseCustom(c)
		if err != nil {
			return nil, fmt.Errorf("--custom: %w", err)
		}
		dets = append(dets, d)
	}
	return dets, nil
}

func printHit(w io.Writer, h journal.Hit) {
	when := "-"
	if !h.Time.IsZero() {
		when = h.Time.Format("2006-01-02 15:04:05.000")
	}
	fmt.Fprintf(w, "%s %s line %d", when, h.Detector, h.Line)
	if len(h.Fields) > 0 {
		keys := make([]string, 0, len(h.Fields))
		for k := range h.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%q", k, h.Fields[k])
		}
	}
	fmt.Fprintln(w)
	for _, l := range h.Evidence {
		fmt.Fprintf(w, "    | %s\n", l)
	}
}

func summarize(counts map[string]int) string {
	if len(counts) == 0 {
		return "no hits"
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	return strings.Join(parts, " ")
}
