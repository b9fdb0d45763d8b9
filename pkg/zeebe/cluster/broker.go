package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/nfslab/nfslab/pkg/container"
)

// StartBroker starts one broker container from spec: its image under
// pull's policy (container.EnsureImage), then the container. Both `nfslab
// zeebe up` and every broker of a Target start this way.
func StartBroker(ctx context.Context, rt container.Runtime, spec container.ZeebeSpec, pull container.PullOptions) (string, error) {
	spec = spec.WithDefaults()
	if err := container.EnsureImage(ctx, rt, spec.Image, pull); err != nil {
		return "", err
	}
	id, err := container.Run(ctx, rt, spec.ContainerSpec())
	if errors.Is(err, container.ErrConflict) {
		return "", fmt.Errorf("%w (remove it with `nfslab zeebe down --name %s`)", err, spec.Name)
	}
	return id, err
}

// WaitBroker waits until the broker in container name answers ready on
// url, failing at once if the container stops meanwhile.
func WaitBroker(ctx context.Context, rt container.Runtime, name, url string, o container.ReadyOptions) error {
	o.Alive = container.AliveCheck(rt, name)
	if err := container.WaitReady(ctx, url, o); err != nil {
		return fmt.Errorf("zeebe broker %s is not ready: %w", name, err)
	}
	return nil
}

// RemoveBroker removes the one broker container called name, through
// container.Cleanup's path so that pause, stop and "already gone" are
// handled as for RemoveAll. A container without nfslab's owner label is
// refused; a missing one is an error wrapping container.ErrNotFound.
func RemoveBroker(ctx context.Context, rt container.Runtime, name string) ([]string, error) {
	in, err := rt.Inspect(ctx, name)
	if err != nil {
		return nil, err
	}
	if in.Labels[container.LabelOwner] != container.OwnerValue {
		return nil, fmt.Errorf("container %s has no %s=%s label: not nfslab's, not removing it", name, container.LabelOwner, container.OwnerValue)
	}
	opts := container.CleanupOptions{RunID: in.Labels[container.LabelRun], Role: in.Labels[container.LabelRole],
		DetachNetns: container.DetachNetns}
	return container.Cleanup(ctx, singleRuntime{Runtime: rt, id: in.ID}, opts)
}

// RemoveAll removes every nfslab broker container (of runID, if given),
// unpausing paused ones first, and the namespace names attached for them
// (detach; nil means container.DetachNetns).
func RemoveAll(ctx context.Context, rt container.Runtime, runID string, detach func(string) error) ([]string, error) {
	if detach == nil {
		detach = container.DetachNetns
	}
	return container.Cleanup(ctx, rt, container.CleanupOptions{RunID: runID, Role: container.RoleZeebe, DetachNetns: detach})
}

// singleRuntime lists only one container.
type singleRuntime struct {
	container.Runtime
	id string
}

func (s singleRuntime) List(ctx context.Context, labels map[string]string) ([]container.Info, error) {
	all, err := s.Runtime.List(ctx, labels)
	var out []container.Info
	for _, in := range all {
		if in.ID == s.id {
			out = append(out, in)
		}
	}
	return out, err
}
