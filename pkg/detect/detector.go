package detect

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
)

// Group says which lines around a trigger line belong to the same event.
type Group int

const (
	// GroupNone: the trigger line alone (plus the head of its log record).
	GroupNone Group = iota
	// GroupStack: the Java stack trace that follows: "\tat ...",
	// "Caused by: ...", "Suppressed: ...", "\t... 24 more".
	GroupStack
	// GroupBanner: the run of '#'-prefixed lines around the trigger, as in
	// the JVM's fatal error banner.
	GroupBanner
	// GroupNext: the next Detector.Next lines, whatever they are.
	GroupNext
)

func (g Group) String() string {
	switch g {
	case GroupStack:
		return "stack"
	case GroupBanner:
		return "banner"
	case GroupNext:
		return "next"
	}
	return "none"
}

// Detector is one named pattern.
type Detector struct {
	// Name is stable and kebab-case; it is what scenarios refer to.
	Name        string
	Description string
	// Literals: a line must contain at least one of these (case-sensitive)
	// before Re is tried. Custom derives them from Re when it can.
	Literals []string
	// Re, when set, must also match the trigger line; its named groups
	// become Hit.Fields.
	Re    *regexp.Regexp
	Group Group
	Next  int // lines for GroupNext
	// fields extracts values from the whole event (built-ins only).
	fields func(evidence []string, f map[string]string)
}

var nameRe = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// ErrInvalid marks a bad detector definition.
var ErrInvalid = errors.New("invalid detector")

// Custom returns a detector for a regular expression (RE2 syntax, as Go's
// regexp). Lines are tested against the literal the expression requires, if
// it has one, before the expression runs.
func Custom(name, expr string, group Group, next int) (Detector, error) {
	if !nameRe.MatchString(name) {
		return Detector{}, fmt.Errorf("%w: name %q is not kebab-case (like my-detector)", ErrInvalid, name)
	}
	if expr == "" {
		return Detector{}, fmt.Errorf("%w: %s: regular expression is empty", ErrInvalid, name)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return Detector{}, fmt.Errorf("%w: %s: %w", ErrInvalid, name, err)
	}
	if group == GroupNext && (next < 1 || next > 1000) {
		return Detector{}, fmt.Errorf("%w: %s: next %d is not in [1, 1000]", ErrInvalid, name, next)
	}
	d := Detector{Name: name, Description: "custom: " + expr, Re: re, Group: group, Next: next}
	if lit := requiredLiteral(expr); lit != "" {
		d.Literals = []string{lit}
	}
	return d, nil
}

// ParseCustom parses the CLI form NAME=REGEX, NAME:stack=REGEX,
// NAME:banner=REGEX or NAME:nextN=REGEX.
func ParseCustom(spec string) (Detector, error) {
	head, expr, ok := strings.Cut(spec, "=")
	if !ok {
		return Detector{}, fmt.Errorf("%w: %q is not NAME=REGEX", ErrInvalid, spec)
	}
	name, mode, _ := strings.Cut(head, ":")
	group, next := GroupNone, 0
	switch {
	case mode == "" || mode == "none":
	case mode == "stack":
		group = GroupStack
	case mode == "banner":
		group = GroupBanner
	case strings.HasPrefix(mode, "next"):
		n, err := strconv.Atoi(strings.TrimPrefix(mode, "next"))
		if err != nil {
			return Detector{}, fmt.Errorf("%w: grouping %q in %q is not nextN (like next3)", ErrInvalid, mode, spec)
		}
		group, next = GroupNext, n
	default:
		return Detector{}, fmt.Errorf("%w: grouping %q in %q is not stack, banner or nextN", ErrInvalid, mode, spec)
	}
	return Custom(name, expr, group, next)
}

// requiredLiteral returns the longest case-sensitive literal every match of
// expr contains, or "".
func requiredLiteral(expr string) string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return ""
	}
	return required(re.Simplify())
}

func required(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return ""
		}
		return string(re.Rune)
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, s := range re.Sub {
			if l := required(s); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}
