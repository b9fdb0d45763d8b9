package cmdrun

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestOutputCarriesCommandAndOutput(t *testing.T) {
	out, err := Output(context.Background(), "sh", "-c", "echo $LC_ALL")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "C" {
		t.Fatalf("LC_ALL in child = %q, want C", out)
	}
	err = Run(context.Background(), "sh", "-c", "echo boom >&2; exit 3")
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not *Error", err)
	}
	if ce.ExitCode() != 3 || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "sh -c") {
		t.Fatalf("error lacks command, status or output: %v (exit %d)", err, ce.ExitCode())
	}
}
