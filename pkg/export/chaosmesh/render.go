package chaosmesh

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
)

// FileName is the name the command gives the Workflow's file in -o DIR.
func (r *Result) FileName() string { return r.Workflow.Metadata.Name + ".workflow.yaml" }

// YAML writes the Workflow as one YAML document after a comment block:
// where it comes from, what each step became, and every Unmapped entry.
// source names the scenario file in the header.
func (r *Result) YAML(source string) ([]byte, error) {
	js, err := json.Marshal(r.Workflow)
	if err != nil {
		return nil, fmt.Errorf("encoding the workflow: %w", err)
	}
	body, err := yaml.JSONToYAML(js)
	if err != nil {
		return nil, fmt.Errorf("encoding the workflow as YAML: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Chaos Mesh Workflow written by 'nfslab export chaos-mesh' from %s.\n", source)
	b.WriteString("# Apply with: kubectl apply -f " + r.FileName() + "\n#\n")
	b.WriteString(comment(r.Report()))
	b.Write(body)
	return []byte(b.String()), nil
}

// Report is the text the command prints and the YAML carries as comments:
// what maps, then what does not.
func (r *Result) Report() string {
	var b strings.Builder
	if len(r.Mapped) > 0 {
		b.WriteString("Exported (from and to are offsets on the timeline):\n")
		for _, m := range r.Mapped {
			b.WriteString("  - " + m + "\n")
		}
	}
	if len(r.Unmapped) > 0 {
		fmt.Fprintf(&b, "Not exported, or exported in part (%d; Chaos Mesh has no equivalent: check these yourself):\n", len(r.Unmapped))
		for _, u := range r.Unmapped {
			b.WriteString("  - " + u.String() + "\n")
		}
	}
	return b.String()
}

func comment(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	return b.String()
}
