package netfault

import (
	"context"

	"github.com/nfslab/nfslab/internal/cmdrun"
)

// nftCommand runs nft inside the namespace: the child inherits the netns
// of the locked thread that starts it.
type nftCommand struct{}

// Ruleset runs `nft -j list ruleset` in ns.
func (nftCommand) Ruleset(ctx context.Context, ns string) ([]byte, error) {
	var out []byte
	err := inNetns(ns, func() error {
		var err error
		out, err = cmdrun.Output(ctx, "nft", "-j", "list", "ruleset")
		return err
	})
	return out, err
}
