package duration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "250ms": 250 * time.Millisecond, "60s": time.Minute, " 2m ": 2 * time.Minute,
		"1m30s": 90 * time.Second, "1h2m3s": time.Hour + 2*time.Minute + 3*time.Second,
	} {
		got, err := Parse(in)
		if err != nil || got.D() != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{"5": `"5" is not valid`, "-1s": `"-1s" is negative`, "soon": `"soon"`, "": `""`} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Parse(%q) error = %v, want it to name %s", in, err, msg)
		}
	}
}

func TestJSON(t *testing.T) {
	var v struct {
		D Duration `json:"d"`
		O Duration `json:"o,omitempty"`
	}
	if err := json.Unmarshal([]byte(`{"d":"1m30s"}`), &v); err != nil || v.D.D() != 90*time.Second {
		t.Fatalf("unmarshal = %v, %v", v.D, err)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"d":"1m30s"}` {
		t.Fatalf("marshal = %s, %v (zero must be omitted with omitempty)", b, err)
	}
	for _, bad := range []string{`{"d":90}`, `{"d":"90"}`, `{"d":"-2s"}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
	// As a map key and through TextUnmarshaler (faultfs's HTTP API).
	var m map[string]Duration
	if err := json.Unmarshal([]byte(`{"a":"250ms"}`), &m); err != nil || m["a"].D() != 250*time.Millisecond {
		t.Fatalf("map = %v, %v", m, err)
	}
}

func TestYAML(t *testing.T) {
	var v struct {
		A struct {
			B Duration `yaml:"b"`
		} `yaml:"a"`
	}
	if err := yaml.UnmarshalWithOptions([]byte("a:\n  b: 1m30s\n"), &v, yaml.Strict()); err != nil || v.A.B.D() != 90*time.Second {
		t.Fatalf("unmarshal = %v, %v", v.A.B, err)
	}
	err := yaml.UnmarshalWithOptions([]byte("a:\n  b: 90\n"), &v, yaml.Strict())
	if err == nil {
		t.Fatal("a bare number was accepted")
	}
	// The position is what lets a scenario error say where the value is.
	if got := yaml.FormatError(err, false, false); !strings.HasPrefix(got, "[2:6] ") || !strings.Contains(got, `duration "90" is not valid`) {
		t.Errorf("error = %q, want it at [2:6] naming the value", got)
	}
	b, err := yaml.Marshal(v)
	if err != nil || strings.TrimSpace(string(b)) != "a:\n  b: 1m30s" {
		t.Errorf("marshal = %q, %v", b, err)
	}
}
