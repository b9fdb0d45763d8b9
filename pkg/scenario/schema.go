package scenario

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/faultfs"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// enums constrain string fields in the JSON schema, by "Type.Field".
func enums() map[string][]string {
	return map[string][]string{
		"Storage.Kind":        {StorageNFS, StorageFaultfs, StorageLocal},
		"NFSServer.Kind":      {ServerNetns, ServerExternal, ServerContainer},
		"NFSServer.LocalIO":   {LocalIOAllow, LocalIODisable},
		"Target.Kind":         {TargetProbe, TargetZeebe},
		"Load.Kind":           {LoadAuto, LoadZeebe, LoadProbe, LoadNone},
		"Step.Action":         Actions,
		"Expectation.Kind":    ExpectationKinds,
		"Expectation.By":      {RecoverByRate, RecoverByDetector, RecoverByAppending},
		"Expectation.Code":    append([]string{"any"}, ErrorCodes...),
		"Expectation.Cause":   FindingCauses,
		"Expectation.Targets": {TargetProbe, TargetZeebe},
		"Fault.Proto":         {"tcp", "udp"},
		"Fault.Dir":           {string(netfault.DirOut), string(netfault.DirIn), string(netfault.DirBoth)},
		"Fault.RouteType":     {string(netfault.RouteUnreachable), string(netfault.RouteBlackhole), string(netfault.RouteProhibit)},
		"FaultfsRule.Ops":     faultfs.OpNames(),
	}
}

// openEnums are string fields whose listed values are the common ones, not
// all: an editor offers them, and the pattern admits the rest.
// faultfs.ParseErrno reads any errno(3) name, upper or lower case.
func openEnums() map[string]struct {
	names   []string
	pattern string
} {
	return map[string]struct {
		names   []string
		pattern string
	}{
		"FaultfsRule.Errno": {faultfs.ErrnoNames(), "^[Ee][A-Za-z0-9]+$"},
	}
}

// JSONSchema returns a JSON schema (draft 2020-12) of the scenario format,
// made by reflecting over the Go types' yaml tags so that it lists exactly
// the fields the strict decoder accepts. Editors use it through the
// "yaml-language-server: $schema=./schema.json" comment in each file.
func JSONSchema() ([]byte, error) {
	defs := map[string]any{}
	root := schemaFor(reflect.TypeOf(Scenario{}), defs, "")
	doc := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         "https://github.com/nfslab/nfslab/scenarios/schema.json",
		"title":       "nfslab scenario",
		"description": "A fault-injection experiment: storage, target, load, timeline, expectations, rollbacks. Generated from pkg/scenario; see docs/scenarios.md.",
		"$defs":       defs,
	}
	for k, v := range root.(map[string]any) {
		doc[k] = v
	}
	return json.MarshalIndent(doc, "", "  ")
}

var (
	durationType = reflect.TypeOf(duration.Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
	// A fault's delay and jitter are time.Duration, decoded from "200ms".
	stdDurationType = reflect.TypeOf(time.Duration(0))
	rateType        = reflect.TypeOf(netfault.Rate(0))
	netSizeType     = reflect.TypeOf(netfault.Size(0))
)

func schemaFor(t reflect.Type, defs map[string]any, enumKey string) any {
	switch t {
	case durationType, stdDurationType:
		return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, "description": "duration such as 500ms, 60s, 2m"}
	case sizeType:
		return map[string]any{"type": []string{"string", "integer"}, "pattern": `^[0-9]+ *([KMG]i?B?|B)?$`, "description": "size such as 16MB or bytes"}
	case rateType:
		return map[string]any{"type": "string", "pattern": `^[0-9]+(\.[0-9]+)?([KkMmGgTt]?(bit|bps))?$`, "description": "rate in tc's units such as 1mbit, 512kbit, 100kbps"}
	case netSizeType:
		return map[string]any{"type": "string", "pattern": `^[0-9]+(\.[0-9]+)?([KkMmGg]?[Bb]?|[KkMmGg]bit)$`, "description": "bytes in tc's units such as 32kb"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaFor(t.Elem(), defs, enumKey)
	case reflect.String:
		s := map[string]any{"type": "string"}
		if e, ok := enums()[enumKey]; ok {
			s["enum"] = e
		}
		if e, ok := openEnums()[enumKey]; ok {
			s["anyOf"] = []any{map[string]any{"enum": e.names}, map[string]any{"pattern": e.pattern}}
		}
		return s
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaFor(t.Elem(), defs, enumKey)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaFor(t.Elem(), defs, "")}
	case reflect.Struct:
		name := t.Name()
		if _, ok := defs[name]; !ok {
			defs[name] = nil // break recursion
			props := map[string]any{}
			var required []string
			for _, f := range YAMLFields(t) {
				props[f.Name] = schemaFor(f.Type, defs, name+"."+f.GoName)
				if !f.OmitEmpty {
					required = append(required, f.Name)
				}
			}
			def := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
			if len(required) > 0 {
				def["required"] = required
			}
			defs[name] = def
		}
		if name == "Scenario" {
			return defs[name]
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	}
	return map[string]any{}
}

// Field is one YAML field of a struct.
type Field struct {
	Name, GoName string
	Type         reflect.Type
	OmitEmpty    bool
}

// YAMLFields lists t's fields as the decoder sees them.
func YAMLFields(t reflect.Type) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if sf.Anonymous && strings.Contains(opts, "inline") {
			out = append(out, YAMLFields(sf.Type)...) // netfault.Spec in Fault
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, Field{Name: name, GoName: sf.Name, Type: sf.Type, OmitEmpty: strings.Contains(opts, "omitempty")})
	}
	return out
}
