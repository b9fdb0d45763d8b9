package scenario

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// conforms is a small JSON-schema checker for the subset JSONSchema emits:
// $ref, type object/array/string/number/integer/boolean, properties,
// additionalProperties false, required, enum, pattern, anyOf.
func conforms(v any, s map[string]any, defs map[string]any, path string) error {
	if ref, ok := s["$ref"].(string); ok {
		return conforms(v, defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any), defs, path)
	}
	types := []string{}
	switch t := s["type"].(type) {
	case string:
		types = append(types, t)
	case []any:
		for _, x := range t {
			types = append(types, x.(string))
		}
	}
	switch x := v.(type) {
	case map[string]any:
		if !slices.Contains(types, "object") {
			return fmt.Errorf("%s: object where %v expected", path, types)
		}
		props, _ := s["properties"].(map[string]any)
		for k, val := range x {
			if ps, ok := props[k]; ok {
				if err := conforms(val, ps.(map[string]any), defs, path+"."+k); err != nil {
					return err
				}
			} else if ap, ok := s["additionalProperties"].(map[string]any); ok {
				if err := conforms(val, ap, defs, path+"."+k); err != nil {
					return err
				}
			} else {
				return fmt.Errorf("%s: field %q not in schema", path, k)
			}
		}
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := x[r.(string)]; !ok {
					return fmt.Errorf("%s: required field %q missing", path, r)
				}
			}
		}
	case []any:
		if !slices.Contains(types, "array") {
			return fmt.Errorf("%s: array where %v expected", path, types)
		}
		for i, e := range x {
			if err := conforms(e, s["items"].(map[string]any), defs, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case string:
		if !slices.Contains(types, "string") {
			return fmt.Errorf("%s: string %q where %v expected", path, x, types)
		}
		if e, ok := s["enum"].([]any); ok && !slices.ContainsFunc(e, func(a any) bool { return a == x }) {
			return fmt.Errorf("%s: %q not in enum %v", path, x, e)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(x) {
			return fmt.Errorf("%s: %q does not match %s", path, x, p)
		}
		if alts, ok := s["anyOf"].([]any); ok && !slices.ContainsFunc(alts, func(a any) bool {
			alt := map[string]any{"type": "string"}
			maps.Copy(alt, a.(map[string]any))
			return conforms(x, alt, defs, path) == nil
		}) {
			return fmt.Errorf("%s: %q matches none of %v", path, x, alts)
		}
	case bool:
		if !slices.Contains(types, "boolean") {
			return fmt.Errorf("%s: boolean where %v expected", path, types)
		}
	case uint64, int64, int:
		if !slices.Contains(types, "integer") && !slices.Contains(types, "number") {
			return fmt.Errorf("%s: integer where %v expected", path, types)
		}
	case float64:
		if !slices.Contains(types, "number") {
			return fmt.Errorf("%s: number where %v expected", path, types)
		}
	}
	return nil
}
