package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nfslab/nfslab/pkg/journal"
)

// File names inside a run directory.
const (
	MarkdownName = "report.md"
	HTMLName     = "report.html"
)

// Write renders recs into dir/report.md and dir/report.html. Each file is
// written to a temporary name and renamed, so a reader never sees half a
// report.
func Write(dir string, recs []journal.Record) error {
	r := Build(recs)
	var md, h bytes.Buffer
	if err := WriteMarkdown(&md, r); err != nil {
		return fmt.Errorf("rendering %s: %w", MarkdownName, err)
	}
	if err := WriteHTML(&h, r); err != nil {
		return fmt.Errorf("rendering %s: %w", HTMLName, err)
	}
	for name, data := range map[string][]byte{MarkdownName: md.Bytes(), HTMLName: h.Bytes()} {
		if err := writeAtomic(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	return nil
}

// WriteDir reads dir/journal.jsonl and writes the reports next to it.
func WriteDir(dir string) error {
	recs, err := journal.ReadFile(filepath.Join(dir, journal.FileName))
	if err != nil {
		return fmt.Errorf("writing report for %s: %w", dir, err)
	}
	return Write(dir, recs)
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
