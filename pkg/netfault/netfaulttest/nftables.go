package netfaulttest

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
)

// EmptyRuleset is what `nft -j list ruleset` prints for a namespace
// without tables (nft 1.0.6).
const EmptyRuleset = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}]}`

// NFTables is a fake nft per namespace. It satisfies netfault.NFTables:
// each namespace returns the JSON set with SetRuleset (EmptyRuleset
// otherwise); with Missing set it fails as when nft is not installed.
type NFTables struct {
	mu    sync.Mutex
	rules map[string]string
	// Missing makes every call fail with exec.ErrNotFound.
	Missing bool
	// Calls counts Ruleset calls.
	Calls int
}

// NewNFTables returns a fake whose namespaces have no tables.
func NewNFTables() *NFTables { return &NFTables{rules: map[string]string{}} }

// SetRuleset sets what `nft -j list ruleset` prints in netns; use JSON
// captured from a real nft (see pkg/netfault/testdata).
func (n *NFTables) SetRuleset(netns, json string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rules[netns] = json
}

// Ruleset implements netfault.NFTables.
func (n *NFTables) Ruleset(_ context.Context, netns string) ([]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.Calls++
	if n.Missing {
		return nil, fmt.Errorf("running nft -j list ruleset: %w", &exec.Error{Name: "nft", Err: exec.ErrNotFound})
	}
	if r, ok := n.rules[netns]; ok {
		return []byte(r), nil
	}
	return []byte(EmptyRuleset), nil
}
