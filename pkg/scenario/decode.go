package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// MaxFileSize bounds what Decode reads; a scenario is a page of YAML.
const MaxFileSize = 1 << 20

// LoadFile reads, decodes and validates the scenario file at path, applying
// overrides ("target.kind=zeebe") first.
func LoadFile(path string, overrides ...string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	s, err := Decode(data, overrides...)
	var ve *ValidationError
	if errors.As(err, &ve) {
		ve.File = path
	}
	return s, err
}

// Decode parses data strictly (unknown fields and duplicate keys are
// errors with line and column), applies overrides, and validates. Every
// error wraps ErrInvalid.
func Decode(data []byte, overrides ...string) (*Scenario, error) {
	if len(data) > MaxFileSize {
		return nil, &ValidationError{Problems: []Problem{{Msg: fmt.Sprintf("file is %d bytes, more than the %d a scenario may have", len(data), MaxFileSize)}}}
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(err)
	}
	if len(file.Docs) != 1 || file.Docs[0] == nil || file.Docs[0].Body == nil {
		return nil, &ValidationError{Problems: []Problem{{Msg: fmt.Sprintf("want exactly one YAML document, found %d", countDocs(file))}}}
	}
	for _, kv := range overrides {
		if err := applyOverride(file, kv); err != nil {
			return nil, &ValidationError{Problems: []Problem{{Path: "--set " + kv, Msg: err.Error()}}}
		}
	}
	body := file.Docs[0].Body
	if _, ok := body.(*ast.MappingNode); !ok {
		if _, ok := body.(*ast.MappingValueNode); !ok {
			return nil, &ValidationError{Problems: []Problem{{Line: body.GetToken().Position.Line, Column: body.GetToken().Position.Column,
				Msg: "a scenario is a mapping (metadata:, storage:, target:, timeline:, ...)"}}}
		}
	}
	var s Scenario
	if err := yaml.NodeToValue(body, &s, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return nil, yamlError(err)
	}
	if err := s.Validate(); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			locate(file, ve)
		}
		return nil, err
	}
	return &s, nil
}

func countDocs(f *ast.File) int {
	n := 0
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			n++
		}
	}
	return n
}

var posRE = regexp.MustCompile(`^\[(\d+):(\d+)\] (.*)`)

// yamlError turns a go-yaml error into a Problem with line and column.
func yamlError(err error) error {
	msg := yaml.FormatError(err, false, false)
	p := Problem{Msg: strings.TrimSpace(msg)}
	var pe *posError
	if errors.As(err, &pe) {
		return &ValidationError{Problems: []Problem{{Line: pe.line, Column: pe.col, Msg: pe.err.Error()}}}
	}
	if m := posRE.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Column, _ = strconv.Atoi(m[2])
		p.Msg = strings.TrimSpace(m[3])
	}
	return &ValidationError{Problems: []Problem{p}}
}

// locate fills in line and column of each problem from its path, walking up
// to the nearest node that exists (a missing field is reported at its
// parent).
func locate(f *ast.File, ve *ValidationError) {
	for i := range ve.Problems {
		path := ve.Problems[i].Path
		for path != "" {
			if n := lookup(f, path); n != nil {
				tk := n.GetToken()
				if tk != nil {
					ve.Problems[i].Line = tk.Position.Line
					ve.Problems[i].Column = tk.Position.Column
				}
				break
			}
			path = parentPath(path)
		}
	}
}

func lookup(f *ast.File, path string) ast.Node {
	p, err := yaml.PathString("$." + path)
	if err != nil {
		return nil
	}
	n, err := p.FilterFile(f)
	if err != nil || n == nil {
		return nil
	}
	return n
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

var overrideKeyRE = regexp.MustCompile(`^[a-z_]+(\[[0-9]+\])?(\.[a-z_]+(\[[0-9]+\])?)*$`)

// applyOverride sets key=value in the document before decoding, so the
// override is checked by the same strict decoder and Validate.
func applyOverride(f *ast.File, kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok || !overrideKeyRE.MatchString(key) {
		return fmt.Errorf("override %q is not KEY=VALUE with KEY a dotted path such as target.kind", kv)
	}
	if strings.ContainsAny(val, "\n") {
		return fmt.Errorf("override value %q spans lines", val)
	}
	p, err := yaml.PathString("$." + key)
	if err != nil {
		return fmt.Errorf("override key %q: %w", key, err)
	}
	if n, err := p.FilterFile(f); err == nil && n != nil {
		if err := p.ReplaceWithReader(f, strings.NewReader(val)); err != nil {
			return fmt.Errorf("replacing %s: %w", key, err)
		}
		return nil
	}
	parent, leaf := parentPath(key), key[strings.LastIndex(key, ".")+1:]
	if strings.Contains(leaf, "[") {
		return fmt.Errorf("override %q: no element %s to replace", kv, key)
	}
	src := leaf + ": " + val
	if parent == "" {
		pp, _ := yaml.PathString("$")
		return mergeOrErr(pp, f, src, key)
	}
	pp, err := yaml.PathString("$." + parent)
	if err != nil {
		return fmt.Errorf("override key %q: %w", key, err)
	}
	if n, err := pp.FilterFile(f); err != nil || n == nil {
		return fmt.Errorf("override %q: the document has no %s to add %s to", kv, parent, leaf)
	}
	return mergeOrErr(pp, f, src, key)
}

func mergeOrErr(p *yaml.Path, f *ast.File, src, key string) error {
	if err := p.MergeFromReader(f, bytes.NewReader([]byte(src))); err != nil {
		return fmt.Errorf("adding %s: %w", key, err)
	}
	return nil
}
