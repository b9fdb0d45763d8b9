package ownchain

import (
	"strconv"
	"strings"
)

// Rule is one `-A CHAIN ...` line of `iptables [-v] -S` taken apart.
type Rule struct {
	Chain          string
	Args           []string // the rule spec without -A CHAIN and -c
	Packets, Bytes uint64
	Counted        bool              // -c was present
	Comment        string            // the first --comment
	Opt            map[string]string // last value of each --option / -x
	Has            map[string]bool   // flags present, e.g. "-m statistic"
}

// Target is the -j target.
func (r Rule) Target() string { return r.Opt["-j"] }

// ParseRule parses one line of `iptables [-v] -S`. ok is false for lines
// that are not rules (-P, -N).
func ParseRule(line string) (Rule, bool) {
	f := split(strings.TrimSpace(line))
	if len(f) < 2 || f[0] != "-A" {
		return Rule{}, false
	}
	r := Rule{Chain: f[1], Opt: map[string]string{}, Has: map[string]bool{}}
	for i := 2; i < len(f); i++ {
		a := f[i]
		if a == "-c" && i+2 < len(f) {
			p, err1 := strconv.ParseUint(f[i+1], 10, 64)
			b, err2 := strconv.ParseUint(f[i+2], 10, 64)
			if err1 == nil && err2 == nil {
				r.Packets, r.Bytes, r.Counted = p, b, true
				i += 2
				continue
			}
		}
		r.Args = append(r.Args, a)
		if strings.HasPrefix(a, "-") && i+1 < len(f) && !strings.HasPrefix(f[i+1], "-") {
			v := f[i+1]
			if a == "-m" {
				r.Has["-m "+v] = true
			}
			r.Opt[a] = v
			if a == "--comment" && r.Comment == "" {
				r.Comment = v
			}
			r.Args = append(r.Args, v)
			i++
			continue
		}
		r.Has[a] = true
	}
	return r, true
}

// split splits one line of `iptables -S` into arguments, honouring the
// double quotes (and backslash escapes inside them) iptables puts around
// comments.
func split(line string) []string {
	var out []string
	var cur strings.Builder
	inQ, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && inQ && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQ, have = !inQ, true
		case (c == ' ' || c == '\t') && !inQ:
			if have || cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
		}
	}
	if have || cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// Quote quotes an argument the way iptables -S does, so that a printed
// command can be pasted into a shell.
func Quote(a string) string {
	if a == "" || strings.ContainsAny(a, " \t\"\\'") {
		return strconv.Quote(a)
	}
	return a
}

// Join quotes and joins arguments.
func Join(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

// Command writes an iptables invocation the way a user would type it,
// prefixed with `ip netns exec NETNS` outside the caller's namespace.
func Command(netns, cmd string, args []string) string {
	var b strings.Builder
	if netns != "" {
		b.WriteString("ip netns exec " + netns + " ")
	}
	b.WriteString(cmd)
	if len(args) > 0 {
		b.WriteString(" " + Join(args))
	}
	return b.String()
}
