package loggen

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

func TestDeterministic(t *testing.T) {
	var a, b, c bytes.Buffer
	for _, x := range []struct {
		buf  *bytes.Buffer
		seed uint64
	}{{&a, 1}, {&b, 1}, {&c, 2}} {
		if err := Write(x.buf, 50_000, x.seed); err != nil {
			t.Fatal(err)
		}
	}
	if sha256.Sum256(a.Bytes()) != sha256.Sum256(b.Bytes()) {
		t.Fatal("same seed gave different logs")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("different seeds gave the same log")
	}
	if n := bytes.Count(a.Bytes(), []byte{'\n'}); n < 50_000 || n > 50_020 {
		t.Fatalf("%d lines", n)
	}
}
