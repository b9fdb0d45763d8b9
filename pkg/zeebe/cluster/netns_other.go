//go:build !linux

package cluster

import (
	"context"
	"fmt"

	"github.com/nfslab/nfslab/pkg/engine"
)

func netnsAddr(context.Context, string) (string, error) {
	return "", fmt.Errorf("container addresses need Linux network namespaces: %w", engine.ErrUnsupported)
}
