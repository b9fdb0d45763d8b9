package scenario

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"sort"
	"testing"

	"github.com/goccy/go-yaml"
)

var update = flag.Bool("update", false, "rewrite scenarios/schema.json")

const schemaPath = "../../scenarios/schema.json"

// TestSchemaUpToDate keeps the shipped schema equal to the one generated
// from the Go types: run go test ./pkg/scenario -run Schema -update after
// changing a type.
func TestSchemaUpToDate(t *testing.T) {
	want, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile(schemaPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale; regenerate with: go test ./pkg/scenario -run Schema -update", schemaPath)
	}
}

// TestSchemaListsGoFields checks the schema's properties against the Go
// types' yaml tags, def by def, and that no def allows unknown fields.
func TestSchemaListsGoFields(t *testing.T) {
	b, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Properties map[string]any `json:"properties"`
		Defs       map[string]struct {
			Properties           map[string]any `json:"properties"`
			AdditionalProperties *bool          `json:"additionalProperties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	types := []any{Metadata{}, Storage{}, NFSServer{}, FaultfsDir{}, Target{}, ProbeTarget{}, ZeebeTarget{}, Load{}, Detector{}, Step{}, Fault{}, FaultfsRule{}, Expectation{}}
	check := func(name string, props map[string]any, typ reflect.Type) {
		var goNames, schemaNames []string
		for _, f := range YAMLFields(typ) {
			goNames = append(goNames, f.Name)
		}
		for k := range props {
			schemaNames = append(schemaNames, k)
		}
		sort.Strings(goNames)
		sort.Strings(schemaNames)
		if !reflect.DeepEqual(goNames, schemaNames) {
			t.Errorf("%s: schema fields %v, Go fields %v", name, schemaNames, goNames)
		}
	}
	check("Scenario", doc.Properties, reflect.TypeOf(Scenario{}))
	for _, v := range types {
		typ := reflect.TypeOf(v)
		d, ok := doc.Defs[typ.Name()]
		if !ok {
			t.Errorf("schema has no $defs/%s", typ.Name())
			continue
		}
		if d.AdditionalProperties == nil || *d.AdditionalProperties {
			t.Errorf("$defs/%s allows unknown fields", typ.Name())
		}
		check(typ.Name(), d.Properties, typ)
	}
}

// TestShippedScenariosMatchSchemaFields walks every shipped file's keys
// through the schema, so a file the Go decoder accepts is also accepted by
// an editor using the schema.
func TestShippedScenariosMatchSchemaFields(t *testing.T) {
	b, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	defs := schema["$defs"].(map[string]any)
	for _, f := range shipped(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		if err := conforms(v, schema, defs, "$"); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
