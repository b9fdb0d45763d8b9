package container

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Pull policies: when EnsureImage may pull.
const (
	PullMissing = "missing" // pull when the image is not in local storage
	PullNever   = "never"   // fail instead
)

// PullTimeout bounds the one pull EnsureImage tries. It is long enough for
// the Zeebe image (some hundred MB) on a laptop's connection; where no
// registry is reachable (CI, an air-gapped lab) the registry client fails
// on its own within seconds and the caller gets the hint.
const PullTimeout = 10 * time.Minute

// PullOptions is the one image policy of every nfslab container.
type PullOptions struct {
	// Policy is PullMissing (default) or PullNever.
	Policy string
	// Progress receives the pull's progress lines (nil discards them).
	Progress io.Writer
	// Timeout bounds the pull (default PullTimeout).
	Timeout time.Duration
	// Hint ends a failure message with the caller's own way out, e.g.
	// "or pass --image".
	Hint string
}

// validatePullPolicy names a policy that is neither missing nor never.
func validatePullPolicy(p string) error {
	if p != "" && p != PullMissing && p != PullNever {
		return fmt.Errorf("pull policy %q is not %s or %s", p, PullMissing, PullNever)
	}
	return nil
}

// EnsureImage makes image present in rt's local storage: nothing when it
// is there, one bounded pull when the policy allows it, else an error that
// names the image and how to load it without a registry.
func EnsureImage(ctx context.Context, rt Runtime, image string, o PullOptions) error {
	if err := validatePullPolicy(o.Policy); err != nil {
		return err
	}
	ok, err := rt.ImageExists(ctx, image)
	if err != nil {
		return fmt.Errorf("looking up image %s: %w", image, err)
	}
	if ok {
		return nil
	}
	hint := fmt.Sprintf("load it with `podman load -i image.tar` (made with `podman save -o image.tar %s` on a machine that can reach the registry)", image)
	if o.Hint != "" {
		hint += ", " + o.Hint
	}
	if o.Policy == PullNever {
		return fmt.Errorf("image %s: %w in local storage and --pull=never: %s", image, ErrNoImage, hint)
	}
	w := o.Progress
	if w == nil {
		w = io.Discard
	}
	fmt.Fprintf(w, "image %s not in local storage, pulling...\n", image)
	timeout := o.Timeout
	if timeout == 0 {
		timeout = PullTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := rt.Pull(pctx, image, w); err != nil {
		return fmt.Errorf("image %s is not in local storage and no registry is reachable (%w): %s", image, err, hint)
	}
	return nil
}
