package podman

import (
	"errors"
	"reflect"
	"testing"

	"github.com/nfslab/nfslab/pkg/container"
)

func TestLineBufferJoinsPartialFrames(t *testing.T) {
	var got []string
	var b lineBuffer
	fn := func(l container.LogLine) { got = append(got, l.Text) }
	b.feed("# SIGBUS (0x", container.Stdout, fn)
	b.feed("7) at pc=1\r\n# Problematic frame:\npart", container.Stdout, fn)
	b.flush(container.Stdout, fn)
	want := []string{"# SIGBUS (0x7) at pc=1", "# Problematic frame:", "part"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}

func TestMapErr(t *testing.T) {
	for _, c := range []struct {
		in   error
		want error
	}{
		{errors.New("no container with name or ID \"x\" found: no such container"), container.ErrNotFound},
		{errors.New("the container name \"x\" is already in use"), container.ErrConflict},
		{errors.New("\"x\" is not paused, can't unpause: container state improper"), container.ErrConflict},
	} {
		if got := mapErr(c.in, "op"); !errors.Is(got, c.want) {
			t.Errorf("mapErr(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
