package ownchain

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
)

// IPTables is the part of *iptables.IPTables (github.com/coreos/go-iptables)
// that nfslab uses. Each value acts in one network namespace, one address
// family and one backend (nft or legacy).
type IPTables interface {
	Insert(table, chain string, pos int, rulespec ...string) error
	Append(table, chain string, rulespec ...string) error
	Delete(table, chain string, rulespec ...string) error
	Exists(table, chain string, rulespec ...string) (bool, error)
	List(table, chain string) ([]string, error)
	ListWithCounters(table, chain string) ([]string, error)
	ListChains(table string) ([]string, error)
	ChainExists(table, chain string) (bool, error)
	NewChain(table, chain string) error
	DeleteChain(table, chain string) error
}

// Backend is one iptables implementation: the commands for IPv4 and IPv6.
type Backend struct {
	Name string // "nft" or "legacy"
	IPv4 string // e.g. "iptables" or "iptables-legacy"
	IPv6 string // e.g. "ip6tables" or "ip6tables-legacy"
	// Legacy backends are only consulted in a namespace that already has
	// legacy tables (/proc/net/ip_tables_names): merely listing them would
	// create tables and make iptables-nft print warnings.
	Legacy bool
}

// Command returns the command for the address family.
func (b Backend) Command(v6 bool) string {
	if v6 {
		return b.IPv6
	}
	return b.IPv4
}

// NotExist reports whether err says the rule or chain is already gone:
// go-iptables' *iptables.Error and netfaulttest's fake implement
// IsNotExist.
func NotExist(err error) bool {
	var ne interface{ IsNotExist() bool }
	if errors.As(err, &ne) && ne.IsNotExist() {
		return true
	}
	return errors.Is(err, fs.ErrNotExist)
}

// ListIfExists lists chain with its counters; exists is false when the
// chain is missing. One command where ChainExists and ListWithCounters
// are two: a scan that runs every second (a scenario's counter samples)
// pays for each command, about 50 ms of CPU in a TCG guest.
// Exit status 1 is a missing chain, as go-iptables' ChainExists reads it:
// iptables says "No chain/target/match by that name", iptables-nft "is
// incompatible, use 'nft' tool" in a table that lacks the chain.
//
// Equivalent to: `iptables -t TABLE -v -S CHAIN`.
func ListIfExists(ipt IPTables, table, chain string) (lines []string, exists bool, err error) {
	lines, err = ipt.ListWithCounters(table, chain)
	if err == nil {
		return lines, true, nil
	}
	var st interface{ ExitStatus() int }
	if NotExist(err) || (errors.As(err, &st) && st.ExitStatus() == 1) {
		return nil, false, nil
	}
	return nil, false, err
}

// Chain is a chain nfslab owns in Table, jumped to from Builtin by a rule
// tagged with Comment.
type Chain struct {
	Table   string // "filter", "nat"
	Name    string // e.g. "NFSLAB-OUTPUT"
	Builtin string // e.g. "OUTPUT"
	Comment string // the tag on the jump, e.g. "nfslab"
}

// JumpArgs is the jump rule exactly as nfslab writes it.
func (c Chain) JumpArgs() []string {
	return []string{"-m", "comment", "--comment", c.Comment, "-j", c.Name}
}

// Create makes the chain exist; a chain that exists (or that another
// process creates meanwhile) is done.
//
// Equivalent to: `iptables -t TABLE -N NAME` unless it exists.
func (c Chain) Create(ipt IPTables) error {
	ok, err := ipt.ChainExists(c.Table, c.Name)
	if err != nil {
		return fmt.Errorf("checking chain %s: %w", c.Name, err)
	}
	if ok {
		return nil
	}
	return c.newChain(ipt)
}

// newChain creates the chain, which was missing; another process may have
// created it in between.
func (c Chain) newChain(ipt IPTables) error {
	if err := ipt.NewChain(c.Table, c.Name); err != nil {
		if ok, _ := ipt.ChainExists(c.Table, c.Name); !ok {
			return fmt.Errorf("creating chain %s: %w", c.Name, err)
		}
	}
	return nil
}

// jumps finds the jumps to the chain in the -S lines of its built-in
// chain; first is true when rule 1 is the jump exactly as nfslab writes it
// and there is no other.
func (c Chain) jumps(lines []string) (first bool, jumps []Rule) {
	firstSeen := false
	for _, l := range lines {
		r, ok := ParseRule(l)
		if !ok {
			continue
		}
		if !firstSeen {
			firstSeen = true
			first = r.Target() == c.Name && slices.Equal(r.Args, c.JumpArgs())
		}
		if r.Target() == c.Name {
			jumps = append(jumps, r)
		}
	}
	return first && len(jumps) == 1, jumps
}

// EnsureJump makes the jump to the chain the only one and rule 1 of
// Builtin. Other tools insert at the top too (e.g. an ACCEPT for
// established connections), which would hide nfslab's rules. A jump that
// is present and first costs one `iptables -S BUILTIN`; it also proves the
// chain exists (the kernel refuses to delete a chain that is jumped to).
// With create the chain is created when missing; without, a missing chain
// stays missing and present is false.
//
// Equivalent to: `iptables -t TABLE -S BUILTIN`, and when the jump is not
// first, `iptables -t TABLE -D BUILTIN <jump>; iptables -t TABLE -I BUILTIN 1
// -m comment --comment TAG -j NAME`.
func (c Chain) EnsureJump(ipt IPTables, create bool) (present bool, err error) {
	lines, err := ipt.List(c.Table, c.Builtin)
	if err != nil {
		return false, fmt.Errorf("listing %s: %w", c.Builtin, err)
	}
	first, jumps := c.jumps(lines)
	if first {
		return true, nil
	}
	if len(jumps) == 0 {
		ok, err := ipt.ChainExists(c.Table, c.Name)
		if err != nil {
			return false, fmt.Errorf("checking chain %s: %w", c.Name, err)
		}
		if !ok {
			if !create {
				return false, nil
			}
			if err := c.newChain(ipt); err != nil {
				return false, err
			}
		}
	}
	for _, j := range jumps {
		if err := ipt.Delete(c.Table, c.Builtin, j.Args...); err != nil && !NotExist(err) {
			return false, fmt.Errorf("moving jump to %s: %w", c.Name, err)
		}
	}
	if err := ipt.Insert(c.Table, c.Builtin, 1, c.JumpArgs()...); err != nil {
		return false, fmt.Errorf("adding jump from %s to %s: %w", c.Builtin, c.Name, err)
	}
	return true, nil
}

// RemoveJumps deletes every rule of Builtin that jumps to the chain,
// nfslab's or a copy another tool made; gone is done.
func (c Chain) RemoveJumps(ipt IPTables) error {
	lines, err := ipt.List(c.Table, c.Builtin)
	if err != nil {
		return fmt.Errorf("listing %s: %w", c.Builtin, err)
	}
	for _, l := range lines {
		r, ok := ParseRule(l)
		if !ok || r.Target() != c.Name {
			continue
		}
		if err := ipt.Delete(c.Table, c.Builtin, r.Args...); err != nil && !NotExist(err) {
			return fmt.Errorf("removing jump from %s to %s: %w", c.Builtin, c.Name, err)
		}
	}
	return nil
}

// RemoveIfEmpty deletes the chain and its jumps when it holds no rule.
// removed is true when the chain is gone afterwards, also when it did not
// exist.
//
// Equivalent to: `iptables -t TABLE -S NAME`, and when it holds no rule,
// `iptables -t TABLE -D BUILTIN <jump>; iptables -t TABLE -X NAME`.
func (c Chain) RemoveIfEmpty(ipt IPTables) (removed bool, err error) {
	lines, err := ipt.List(c.Table, c.Name)
	if err != nil {
		// iptables-nft words a missing chain in more ways than go-iptables
		// recognises ("is incompatible, use 'nft' tool" in a table that
		// has none of nfslab's chains): ask once more before failing.
		if NotExist(err) {
			return true, nil
		}
		if ok, cerr := ipt.ChainExists(c.Table, c.Name); cerr == nil && !ok {
			return true, nil
		}
		return false, fmt.Errorf("listing %s: %w", c.Name, err)
	}
	for _, l := range lines {
		if _, ok := ParseRule(l); ok {
			return false, nil
		}
	}
	if err := c.RemoveJumps(ipt); err != nil {
		return false, err
	}
	if err := ipt.DeleteChain(c.Table, c.Name); err != nil && !NotExist(err) {
		return false, fmt.Errorf("removing chain %s: %w", c.Name, err)
	}
	return true, nil
}
