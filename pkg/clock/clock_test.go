package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInOrder(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	var got []int
	c.AfterFunc(2*time.Second, func() { got = append(got, 2) })
	c.AfterFunc(time.Second, func() { got = append(got, 1) })
	stop := c.AfterFunc(1500*time.Millisecond, func() { got = append(got, 99) })
	if !stop.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	ch := c.After(3 * time.Second)
	c.Advance(2 * time.Second)
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("fired %v, want [1 2]", got)
	}
	select {
	case <-ch:
		t.Fatal("After(3s) fired at 2s")
	default:
	}
	c.Advance(time.Second)
	if at := <-ch; !at.Equal(time.Unix(3, 0)) {
		t.Fatalf("After fired at %v", at)
	}
	if c.Waiters() != 0 {
		t.Fatalf("waiters left: %d", c.Waiters())
	}
}
