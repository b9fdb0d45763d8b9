package scenario

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Size is a byte count written as 16MB, 512KB, 1GB (powers of 1024, as
// Zeebe reads LOGSEGMENTSIZE) or a plain number of bytes.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// ParseSize parses s, naming s in the error.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) {
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is not valid (want e.g. 16MB, 512KB, 4096)", s)
	}
	return Size(n * mult), nil
}

func (s Size) String() string {
	switch {
	case s != 0 && s%(1<<30) == 0:
		return fmt.Sprintf("%dGB", s>>30)
	case s != 0 && s%(1<<20) == 0:
		return fmt.Sprintf("%dMB", s>>20)
	case s != 0 && s%(1<<10) == 0:
		return fmt.Sprintf("%dKB", s>>10)
	}
	return strconv.FormatInt(int64(s), 10)
}

// UnmarshalYAML implements goccy/go-yaml's NodeUnmarshaler.
func (s *Size) UnmarshalYAML(n ast.Node) error {
	v, err := ParseSize(nodeText(n))
	if err != nil {
		return atNode(n, err)
	}
	*s = v
	return nil
}

// MarshalYAML writes the size as text.
func (s Size) MarshalYAML() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON writes the size as text.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// posError carries the position of a bad scalar out of the decoder.
type posError struct {
	line, col int
	err       error
}

func (e *posError) Error() string { return fmt.Sprintf("[%d:%d] %v", e.line, e.col, e.err) }
func (e *posError) Unwrap() error { return e.err }

func atNode(n ast.Node, err error) error {
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return err
	}
	return &posError{line: tk.Position.Line, col: tk.Position.Column, err: err}
}

func nodeText(n ast.Node) string {
	if sn, ok := n.(ast.ScalarNode); ok {
		if v := sn.GetValue(); v != nil {
			return fmt.Sprint(v)
		}
	}
	return unquote(n.String())
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}
