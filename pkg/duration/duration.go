package duration

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Duration is a time.Duration written as Go duration text. A bare number
// other than 0 is refused because its unit would be a guess, and so is a
// negative duration: nothing nfslab times runs backwards.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Parse parses s ("500ms", "2m", "1m30s"), naming s in the error.
func Parse(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q is not valid (want e.g. 500ms, 60s, 2m)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return Duration(v), nil
}

// Set parses s into d (the flag.Value form of Parse).
func (d *Duration) Set(s string) error {
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads the text form.
func (d *Duration) UnmarshalText(b []byte) error { return d.Set(string(b)) }

// MarshalJSON writes the duration as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a JSON string; a number is refused (nanoseconds or
// seconds would be a guess).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s is not a string like \"90s\"", b)
	}
	return d.Set(s)
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalYAML implements goccy/go-yaml's NodeUnmarshaler. A bad value
// comes back as a *yaml.SyntaxError carrying the value's token, so that
// yaml.FormatError reports its line and column.
func (d *Duration) UnmarshalYAML(n ast.Node) error {
	if err := d.Set(nodeText(n)); err != nil {
		if tk := n.GetToken(); tk != nil && tk.Position != nil {
			return &yaml.SyntaxError{Message: err.Error(), Token: tk}
		}
		return err
	}
	return nil
}

// nodeText is a scalar's value as text, quotes removed.
func nodeText(n ast.Node) string {
	if sn, ok := n.(ast.ScalarNode); ok {
		if v := sn.GetValue(); v != nil {
			return fmt.Sprint(v)
		}
	}
	s := strings.TrimSpace(n.String())
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}
