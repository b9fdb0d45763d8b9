package container

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func pulls(f *Fake) int {
	n := 0
	for _, c := range f.Calls {
		if strings.HasPrefix(c, "pull ") {
			n++
		}
	}
	return n
}

// One policy for every caller: a present image is never pulled, a missing
// one is pulled once (progress shown) unless the policy is never, and a
// failed pull names the image, the registry and the way to load it.
func TestEnsureImagePolicy(t *testing.T) {
	ctx := context.Background()
	const img = "gcr.io/zeebe-io/zeebe:8.7.5-root"

	f := NewFake(nil)
	f.AddImage(img)
	if err := EnsureImage(ctx, f, img, PullOptions{}); err != nil || pulls(f) != 0 {
		t.Fatalf("present image: %v, %d pulls", err, pulls(f))
	}

	f = NewFake(nil)
	var progress bytes.Buffer
	if err := EnsureImage(ctx, f, img, PullOptions{Progress: &progress}); err != nil || pulls(f) != 1 {
		t.Fatalf("missing image: %v, %d pulls", err, pulls(f))
	}
	if !strings.Contains(progress.String(), "pulling") || !strings.Contains(progress.String(), "Trying to pull") {
		t.Errorf("progress %q", progress.String())
	}
	if ok, _ := f.ImageExists(ctx, img); !ok {
		t.Error("pulled image not in local storage")
	}

	f = NewFake(nil)
	err := EnsureImage(ctx, f, img, PullOptions{Policy: PullNever, Hint: "or pass --image"})
	if !errors.Is(err, ErrNoImage) || pulls(f) != 0 || !strings.Contains(err.Error(), "--pull=never") || !strings.Contains(err.Error(), "or pass --image") {
		t.Errorf("never: %v, %d pulls", err, pulls(f))
	}

	f = NewFake(nil)
	f.PullErr = errors.New("dial tcp: lookup gcr.io: no such host")
	err = EnsureImage(ctx, f, img, PullOptions{})
	for _, want := range []string{img, "not in local storage", "no registry is reachable", "podman load", "no such host"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("failed pull: %v lacks %q", err, want)
		}
	}
	if pulls(f) != 1 {
		t.Errorf("%d pulls, want exactly 1", pulls(f))
	}

	if err := EnsureImage(ctx, NewFake(nil), img, PullOptions{Policy: "always"}); err == nil || !strings.Contains(err.Error(), `"always"`) {
		t.Errorf("bad policy: %v", err)
	}
}
