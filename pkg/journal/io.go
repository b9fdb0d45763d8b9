package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// FileName is the journal's name inside a run directory.
const FileName = "journal.jsonl"

// Writer appends records as JSON lines. It is safe for concurrent use; each
// record is written with a single Write call so lines never interleave.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
	f   *os.File // set by Create; synced and closed by Close
}

// NewWriter returns a Writer appending to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Create creates (or truncates) path and returns a Writer to it.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating journal: %w", err)
	}
	return &Writer{w: f, f: f}, nil
}

// Write appends one record. A zero Time is an error: every record must be
// placed on the timeline.
func (w *Writer) Write(r Record) error {
	if r.Time.IsZero() {
		return fmt.Errorf("writing %s record: time is zero", r.Type)
	}
	if r.Type == "" {
		return errors.New("writing record: type is empty")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Reset()
	enc := json.NewEncoder(&w.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil { // Encode appends the newline
		return fmt.Errorf("encoding %s record: %w", r.Type, err)
	}
	if _, err := w.w.Write(w.buf.Bytes()); err != nil {
		return fmt.Errorf("writing %s record: %w", r.Type, err)
	}
	return nil
}

// Close syncs and closes the file opened by Create; for NewWriter it does
// nothing (the caller owns the io.Writer).
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing journal: %w", err)
	}
	return nil
}

// Reader reads records one at a time.
type Reader struct {
	br   *bufio.Reader
	line int
}

// NewReader returns a Reader over r.
func NewReader(r io.Reader) *Reader { return &Reader{br: bufio.NewReaderSize(r, 64<<10)} }

// Next returns the next record, or io.EOF after the last one. Blank lines
// are skipped. A final line without a newline that does not parse is taken
// as a write cut short by a crash and ends the journal with io.EOF; any
// other malformed line is an error naming its line number.
func (r *Reader) Next() (Record, error) {
	for {
		line, err := r.br.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return Record{}, io.EOF
			}
			return Record{}, fmt.Errorf("reading journal: %w", err)
		}
		r.line++
		complete := err == nil
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec Record
		if jerr := json.Unmarshal(line, &rec); jerr != nil {
			if !complete {
				return Record{}, io.EOF
			}
			return Record{}, fmt.Errorf("journal line %d: %w", r.line, jerr)
		}
		return rec, nil
	}
}

// ReadAll reads every record from r.
func ReadAll(r io.Reader) ([]Record, error) {
	jr := NewReader(r)
	var out []Record
	for {
		rec, err := jr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}

// ReadFile reads every record of the journal at path.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening journal: %w", err)
	}
	defer f.Close()
	return ReadAll(f)
}
