package netfaulttest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Error is the fake's failure, shaped like go-iptables' *iptables.Error:
// the command, its exit status and iptables' stderr.
type Error struct {
	Args   []string
	Status int
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("running %v: exit status %d: %s", e.Args, e.Status, e.Msg)
}

// ExitStatus returns iptables' exit status.
func (e *Error) ExitStatus() int { return e.Status }

// IsNotExist matches go-iptables' (*iptables.Error).IsNotExist.
func (e *Error) IsNotExist() bool {
	for _, p := range []string{
		"Bad rule (does a matching rule exist in that chain?).\n",
		"No chain/target/match by that name.\n",
		"No such file or directory",
		"does not exist",
	} {
		if strings.Contains(e.Msg, p) {
			return true
		}
	}
	return false
}

type rule struct {
	args           []string
	packets, bytes uint64
}

type fchain struct {
	builtin bool
	rules   []*rule
}

type table struct {
	chains map[string]*fchain
	order  []string
}

var builtins = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"raw":    {"PREROUTING", "OUTPUT"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
}

var knownMatches = map[string]bool{
	"tcp": true, "udp": true, "icmp": true, "icmp6": true, "statistic": true, "time": true,
	"comment": true, "conntrack": true, "state": true, "addrtype": true, "multiport": true, "mark": true,
}

var knownTargets = map[string]bool{
	"ACCEPT": true, "DROP": true, "REJECT": true, "RETURN": true, "LOG": true, "DNAT": true,
	"SNAT": true, "MASQUERADE": true, "REDIRECT": true, "MARK": true, "CLASSIFY": true,
}

// IPTables is an in-memory iptables for one namespace, family and backend.
// It satisfies netfault.IPTables.
type IPTables struct {
	mu     sync.Mutex
	cmd    string
	tables map[string]*table
	// Hook, when set, runs before every call; a non-nil error is returned
	// instead of performing it. op is the method name.
	Hook func(op, table, chain string, args []string) error
	// Calls counts calls by method name.
	Calls map[string]int
}

// NewIPTables returns an empty fake for command cmd ("iptables",
// "ip6tables", "iptables-legacy", ...).
func NewIPTables(cmd string) *IPTables {
	return &IPTables{cmd: cmd, tables: map[string]*table{}, Calls: map[string]int{}}
}

func (f *IPTables) tbl(name string) *table {
	t := f.tables[name]
	if t == nil {
		t = &table{chains: map[string]*fchain{}}
		for _, c := range builtins[name] {
			t.chains[c] = &fchain{builtin: true}
			t.order = append(t.order, c)
		}
		f.tables[name] = t
	}
	return t
}

func (f *IPTables) fail(status int, msg string, args ...string) error {
	return &Error{Args: append([]string{f.cmd}, args...), Status: status, Msg: msg}
}

func (f *IPTables) begin(op, table, chain string, args []string) error {
	f.Calls[op]++
	if f.Hook != nil {
		return f.Hook(op, table, chain, args)
	}
	return nil
}

func (f *IPTables) noChain(args ...string) error {
	return f.fail(1, "iptables: No chain/target/match by that name.\n", args...)
}

// check rejects unknown matches and targets the way iptables does.
func (f *IPTables) check(t *table, args []string, cmd []string) error {
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-m":
			if !knownMatches[args[i+1]] {
				return f.fail(2, fmt.Sprintf("iptables v1.8.9 (nf_tables): Couldn't load match `%s':No such file or directory\n\nTry `iptables -h' or 'iptables --help' for more information.\n", args[i+1]), cmd...)
			}
		case "-j":
			if !knownTargets[args[i+1]] && t.chains[args[i+1]] == nil {
				return f.fail(2, fmt.Sprintf("iptables v1.8.9 (nf_tables): Chain '%s' does not exist\nTry `iptables -h' or 'iptables --help' for more information.\n", args[i+1]), cmd...)
			}
		}
	}
	return nil
}

func (f *IPTables) Insert(table, chain string, pos int, spec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cmd := append([]string{"-t", table, "-I", chain, strconv.Itoa(pos)}, spec...)
	if err := f.begin("Insert", table, chain, spec); err != nil {
		return err
	}
	t := f.tbl(table)
	c := t.chains[chain]
	if c == nil {
		return f.noChain(cmd...)
	}
	if err := f.check(t, spec, cmd); err != nil {
		return err
	}
	if pos < 1 || pos > len(c.rules)+1 {
		return f.fail(1, "iptables: Index of insertion too big.\n", cmd...)
	}
	c.rules = slices.Insert(c.rules, pos-1, &rule{args: slices.Clone(spec)})
	return nil
}

func (f *IPTables) Append(table, chain string, spec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cmd := append([]string{"-t", table, "-A", chain}, spec...)
	if err := f.begin("Append", table, chain, spec); err != nil {
		return err
	}
	t := f.tbl(table)
	c := t.chains[chain]
	if c == nil {
		return f.noChain(cmd...)
	}
	if err := f.check(t, spec, cmd); err != nil {
		return err
	}
	c.rules = append(c.rules, &rule{args: slices.Clone(spec)})
	return nil
}

func (f *IPTables) find(c *fchain, spec []string) int {
	for i, r := range c.rules {
		if slices.Equal(r.args, spec) {
			return i
		}
	}
	return -1
}

func (f *IPTables) Delete(table, chain string, spec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cmd := append([]string{"-t", table, "-D", chain}, spec...)
	if err := f.begin("Delete", table, chain, spec); err != nil {
		return err
	}
	c := f.tbl(table).chains[chain]
	if c == nil {
		return f.noChain(cmd...)
	}
	i := f.find(c, spec)
	if i < 0 {
		return f.fail(1, "iptables: Bad rule (does a matching rule exist in that chain?).\n", cmd...)
	}
	c.rules = slices.Delete(c.rules, i, i+1)
	return nil
}

func (f *IPTables) Exists(table, chain string, spec ...string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("Exists", table, chain, spec); err != nil {
		return false, err
	}
	c := f.tbl(table).chains[chain]
	if c == nil {
		return false, nil
	}
	return f.find(c, spec) >= 0, nil
}

func quote(a string) string {
	if a == "" || strings.ContainsAny(a, " \"\\'") {
		return strconv.Quote(a)
	}
	return a
}

// render prints a rule as iptables -S does (comments quoted), with counters
// before -j when counters is set.
func render(chain string, r *rule, counters bool) string {
	var b strings.Builder
	b.WriteString("-A " + chain)
	prevComment := false
	for i, a := range r.args {
		if counters && a == "-j" && (i == 0 || r.args[i-1] != "-m") {
			fmt.Fprintf(&b, " -c %d %d", r.packets, r.bytes)
			counters = false
		}
		b.WriteByte(' ')
		if prevComment {
			b.WriteString(strconv.Quote(a))
		} else {
			b.WriteString(quote(a))
		}
		prevComment = a == "--comment"
	}
	if counters {
		fmt.Fprintf(&b, " -c %d %d", r.packets, r.bytes)
	}
	return b.String()
}

func (f *IPTables) list(op, table, chain string, counters bool) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(op, table, chain, nil); err != nil {
		return nil, err
	}
	c := f.tbl(table).chains[chain]
	if c == nil {
		return nil, f.noChain("-t", table, "-S", chain)
	}
	var out []string
	if c.builtin {
		p := "-P " + chain + " ACCEPT"
		if counters {
			p += " -c 0 0"
		}
		out = append(out, p)
	} else {
		out = append(out, "-N "+chain)
	}
	for _, r := range c.rules {
		out = append(out, render(chain, r, counters))
	}
	return out, nil
}

func (f *IPTables) List(table, chain string) ([]string, error) {
	return f.list("List", table, chain, false)
}

func (f *IPTables) ListWithCounters(table, chain string) ([]string, error) {
	return f.list("ListWithCounters", table, chain, true)
}

func (f *IPTables) ListChains(table string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("ListChains", table, "", nil); err != nil {
		return nil, err
	}
	return slices.Clone(f.tbl(table).order), nil
}

func (f *IPTables) ChainExists(table, chain string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("ChainExists", table, chain, nil); err != nil {
		return false, err
	}
	return f.tbl(table).chains[chain] != nil, nil
}

func (f *IPTables) NewChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("NewChain", table, chain, nil); err != nil {
		return err
	}
	t := f.tbl(table)
	if t.chains[chain] != nil {
		return f.fail(1, "iptables: Chain already exists.\n", "-t", table, "-N", chain)
	}
	t.chains[chain] = &fchain{}
	t.order = append(t.order, chain)
	return nil
}

func (f *IPTables) DeleteChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cmd := []string{"-t", table, "-X", chain}
	if err := f.begin("DeleteChain", table, chain, nil); err != nil {
		return err
	}
	t := f.tbl(table)
	c := t.chains[chain]
	if c == nil {
		return f.noChain(cmd...)
	}
	busy := f.fail(4, fmt.Sprintf("iptables v1.8.9 (nf_tables):  CHAIN_DEL failed (Device or resource busy): chain %s\n", chain), cmd...)
	if c.builtin || len(c.rules) > 0 {
		return busy
	}
	for _, other := range t.chains {
		for _, r := range other.rules {
			for i := 0; i+1 < len(r.args); i++ {
				if r.args[i] == "-j" && r.args[i+1] == chain {
					return busy
				}
			}
		}
	}
	delete(t.chains, chain)
	t.order = slices.DeleteFunc(t.order, func(s string) bool { return s == chain })
	return nil
}

// BumpComment adds to the counters of every rule whose comment is comment
// and reports how many rules it touched.
func (f *IPTables) BumpComment(comment string, packets, bytes uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.tables {
		for _, c := range t.chains {
			for _, r := range c.rules {
				for i := 0; i+1 < len(r.args); i++ {
					if r.args[i] == "--comment" && r.args[i+1] == comment {
						r.packets += packets
						r.bytes += bytes
						n++
						break
					}
				}
			}
		}
	}
	return n
}

// Rules returns the -S lines of a chain (nil if it does not exist).
func (f *IPTables) Rules(table, chain string) []string {
	lines, err := f.List(table, chain)
	if err != nil {
		return nil
	}
	return lines
}

// Save renders every table like iptables-save without counters, tables in
// name order, chains in creation order.
func (f *IPTables) Save() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.tables))
	for n := range f.tables {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		t := f.tables[n]
		fmt.Fprintf(&b, "*%s\n", n)
		for _, c := range t.order {
			if t.chains[c].builtin {
				fmt.Fprintf(&b, ":%s ACCEPT [0:0]\n", c)
			} else {
				fmt.Fprintf(&b, ":%s - [0:0]\n", c)
			}
		}
		for _, c := range t.order {
			for _, r := range t.chains[c].rules {
				b.WriteString(render(c, r, false) + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
