package netfaulttest

import (
	"fmt"
	"io/fs"
	"net/netip"
	"sync"

	"github.com/nfslab/nfslab/pkg/netfault"
)

// Conntrack is a fake connection tracking table per namespace. It
// satisfies netfault.Conntrack: a namespace the world does not know (see
// AddNetns) fails like netns.GetFromName, a known one without entries
// lists none, as ctnetlink does.
type Conntrack struct {
	mu    sync.Mutex
	flows map[string][]netfault.Flow
	// Err, when set, is returned by every Flows call (ctnetlink refused).
	Err error
}

// NewConntrack returns a table in which only the caller's own namespace
// ("") exists.
func NewConntrack() *Conntrack {
	return &Conntrack{flows: map[string][]netfault.Flow{"": nil}}
}

// AddNetns makes netns exist (with an empty table).
func (c *Conntrack) AddNetns(netns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.flows[netns]; !ok {
		c.flows[netns] = nil
	}
}

// Connect records a connection from src to dst over proto ("tcp", "udp")
// that answered from answered to replyTo, as the kernel does once the
// first packet went out: with DNAT answered differs from dst, with
// masquerade replyTo differs from src.
func (c *Conntrack) Connect(netns, proto string, src, dst, answered, replyTo netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := netfault.Flow{Proto: map[string]uint8{"tcp": 6, "udp": 17}[proto]}
	f.Orig.Src, f.Orig.Dst = src, dst
	f.Reply.Src, f.Reply.Dst = answered, replyTo
	c.flows[netns] = append(c.flows[netns], f)
}

// Flows implements netfault.Conntrack.
func (c *Conntrack) Flows(netns string, v6 bool) ([]netfault.Flow, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Err != nil {
		return nil, c.Err
	}
	all, ok := c.flows[netns]
	if !ok {
		return nil, fmt.Errorf("opening network namespace %s: open /run/netns/%s: %w", netns, netns, fs.ErrNotExist)
	}
	var out []netfault.Flow
	for _, f := range all {
		if f.Orig.Dst.Addr().Is6() == v6 {
			out = append(out, f)
		}
	}
	return out, nil
}
