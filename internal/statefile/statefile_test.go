package statefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

type rec struct {
	ID string `json:"id"`
	N  int    `json:"n"`
}

func TestWriteReadListRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "ns")
	if names, err := List(dir); err != nil || names != nil {
		t.Fatalf("List of a missing dir: %v %v", names, err)
	}
	for i, id := range []string{"b", "a"} {
		if err := Write(dir, id, rec{ID: id, N: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := Write(dir, "a", rec{ID: "a", N: 7}); err != nil { // replace
		t.Fatal(err)
	}
	// Leftovers of a crashed writer and foreign files are not records.
	for _, n := range []string{".a-123.tmp", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	names, err := List(dir)
	if err != nil || !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("List = %v, %v", names, err)
	}
	var got rec
	if err := Read(dir, "a", &got); err != nil || got != (rec{"a", 7}) {
		t.Fatalf("Read = %+v, %v", got, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "a.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record mode: %v %v", fi, err)
	}
	if err := Remove(dir, "a"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir, "a"); err != nil {
		t.Fatalf("removing a record that is gone: %v", err)
	}
	if err := Read(dir, "a", &got); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a removed record: %v", err)
	}
}

func TestNamesStayInDir(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"", ".", "..", "../x", "a/b", "x.tmp"} {
		if err := Write(dir, n, rec{}); err == nil {
			t.Errorf("Write(%q) accepted", n)
		}
		if err := Remove(dir, n); err == nil {
			t.Errorf("Remove(%q) accepted", n)
		}
	}
}

func TestReadTornRecord(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte(`{"id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	var r rec
	if err := Read(dir, "x", &r); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("torn record: %v", err)
	}
}
