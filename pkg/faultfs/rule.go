package faultfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/pkg/duration"
)

// ErrInvalid marks a rule that failed validation. Callers map it to exit
// status 2 or HTTP 400.
var ErrInvalid = errors.New("invalid fault rule")

// ErrNotFound is returned by Clear when no rule has the given ID.
var ErrNotFound = errors.New("fault rule not found")

// Op names a filesystem operation a rule applies to.
type Op string

// Operations a rule can match. OpAny matches every operation.
const (
	OpAny     Op = "any"
	OpLookup  Op = "lookup"
	OpOpen    Op = "open"
	OpCreate  Op = "create"
	OpRead    Op = "read"
	OpWrite   Op = "write"
	OpFsync   Op = "fsync"
	OpFlush   Op = "flush"
	OpGetattr Op = "getattr"
	OpSetattr Op = "setattr"
	OpUnlink  Op = "unlink"
	OpRename  Op = "rename"
	OpMkdir   Op = "mkdir"
	OpReaddir Op = "readdir"
	OpStatfs  Op = "statfs"
)

// ops is the one table of operation names: the CLI's help, the scenario
// validator and schema, and Validate all read it through Ops and ParseOp.
var ops = []Op{OpAny, OpLookup, OpOpen, OpCreate, OpRead, OpWrite, OpFsync, OpFlush,
	OpGetattr, OpSetattr, OpUnlink, OpRename, OpMkdir, OpReaddir, OpStatfs}

// Ops lists every operation, OpAny first, for help texts, schemas and
// validation messages.
func Ops() []Op { return slices.Clone(ops) }

// OpNames is Ops as strings.
func OpNames() []string {
	names := make([]string, len(ops))
	for i, o := range ops {
		names[i] = string(o)
	}
	return names
}

// ParseOp parses an operation name ("fsync", "any"), naming the bad value
// and the accepted ones.
func ParseOp(s string) (Op, error) {
	if o := Op(s); o.valid() {
		return o, nil
	}
	return "", fmt.Errorf("%w: op %q is not one of %s", ErrInvalid, s, strings.Join(OpNames(), ", "))
}

func (o Op) valid() bool { return slices.Contains(ops, o) }

// Errno is an error number written by name ("EIO") in JSON and on the
// command line. Zero means "no error": a latency-only rule.
type Errno syscall.Errno

// errnoNames are the errors a storage fault plausibly returns: the names
// help texts, the scenario schema and error messages offer. ParseErrno
// accepts any other name x/sys/unix knows as well.
var errnoNames = []string{"EIO", "ENOSPC", "EDQUOT", "ETIMEDOUT", "EROFS", "ENOENT", "EACCES",
	"EPERM", "ESTALE", "ENOTCONN", "EAGAIN", "EINTR", "EBUSY", "EFBIG", "ENOMEM", "EHOSTUNREACH",
	"ECONNREFUSED", "ENXIO", "EBADF", "EINVAL"}

// ErrnoNames lists the errors a storage fault plausibly returns, EIO first.
// ParseErrno accepts these and any other name x/sys/unix knows.
func ErrnoNames() []string { return slices.Clone(errnoNames) }

// ParseErrno parses an errno name such as "EIO" (case-insensitive). "" and
// "none" give 0.
func ParseErrno(s string) (Errno, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "none") {
		return 0, nil
	}
	e := errnoValue(strings.ToUpper(s))
	if e == 0 {
		return 0, fmt.Errorf("%w: errno %q is not a known error name (for example %s)",
			ErrInvalid, s, strings.Join(errnoNames[:8], ", "))
	}
	return Errno(e), nil
}

func (e Errno) String() string {
	if e == 0 {
		return ""
	}
	if n := unix.ErrnoName(syscall.Errno(e)); n != "" {
		return n
	}
	return fmt.Sprintf("errno(%d)", int(e))
}

// MarshalText writes the name.
func (e Errno) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText reads a name.
func (e *Errno) UnmarshalText(b []byte) error {
	v, err := ParseErrno(string(b))
	if err != nil {
		return err
	}
	*e = v
	return nil
}

// Rule is one fault: operations Op on paths matching PathGlob fail with
// Errno and/or are delayed by Latency, with probability Prob, at most Count
// times.
type Rule struct {
	// ID names the rule; Set assigns "r<N>" when empty.
	ID string `json:"id,omitempty"`
	Op Op     `json:"op"`
	// PathGlob is matched against the path relative to the mount root
	// ("data/journal-1.log", no leading slash) with path.Match, extended
	// with "**" for any number of directories. A pattern without "/"
	// matches the base name at any depth, as in .gitignore. "" and "**"
	// match everything.
	PathGlob string `json:"path,omitempty"`
	Errno    Errno  `json:"errno,omitempty"`
	// Prob is the probability in (0, 1] that a matching operation is
	// faulted. 0 in input means 1.
	Prob float64 `json:"prob,omitempty"`
	// Latency delays the operation before it fails with Errno or, without
	// Errno, proceeds. A long latency emulates a hung server; it is cut
	// short when the rule is cleared (the operation then proceeds) or the
	// filesystem is unmounted (the operation fails with EIO).
	Latency duration.Duration `json:"latency,omitempty"`
	// Count limits how often the rule fires; 0 means without limit.
	Count int64 `json:"count,omitempty"`
	// Offset and Length restrict read and write rules to requests that
	// overlap the byte range [Offset, Offset+Length); Length 0 means to the
	// end of the file. Other operations ignore them.
	Offset int64 `json:"offset,omitempty"`
	Length int64 `json:"length,omitempty"`
}

// WithDefaults fills Prob and PathGlob.
func (r Rule) WithDefaults() Rule {
	if r.Prob == 0 {
		r.Prob = 1
	}
	if r.Op == "" {
		r.Op = OpAny
	}
	return r
}

// Validate checks r (after WithDefaults) and names the bad value.
func (r Rule) Validate() error {
	var errs []string
	if !r.Op.valid() {
		errs = append(errs, fmt.Sprintf("op %q is not one of %s", r.Op, strings.Join(OpNames(), ", ")))
	}
	if !(r.Prob > 0 && r.Prob <= 1) {
		errs = append(errs, fmt.Sprintf("prob %v is not in (0, 1]", r.Prob))
	}
	if r.Latency < 0 {
		errs = append(errs, fmt.Sprintf("latency %v is negative", time.Duration(r.Latency)))
	}
	if r.Errno == 0 && r.Latency == 0 {
		errs = append(errs, "rule has neither errno nor latency, so it would do nothing")
	}
	if r.Errno != 0 && unix.ErrnoName(syscall.Errno(r.Errno)) == "" {
		errs = append(errs, fmt.Sprintf("errno %d is not a known error", int(r.Errno)))
	}
	if r.Count < 0 {
		errs = append(errs, fmt.Sprintf("count %d is negative", r.Count))
	}
	if r.Offset < 0 {
		errs = append(errs, fmt.Sprintf("offset %d is negative", r.Offset))
	}
	if r.Length < 0 {
		errs = append(errs, fmt.Sprintf("length %d is negative", r.Length))
	}
	if (r.Offset != 0 || r.Length != 0) && r.Op != OpRead && r.Op != OpWrite {
		errs = append(errs, fmt.Sprintf("offset/length apply to op read or write, not %q", r.Op))
	}
	if strings.HasPrefix(r.PathGlob, "/") {
		errs = append(errs, fmt.Sprintf("path %q must be relative to the mount root (no leading /)", r.PathGlob))
	}
	if _, err := path.Match(r.PathGlob, ""); err != nil {
		errs = append(errs, fmt.Sprintf("path %q is not a valid glob: %v", r.PathGlob, err))
	}
	if strings.ContainsAny(r.ID, "/ \t\n") {
		errs = append(errs, fmt.Sprintf("id %q may not contain '/' or spaces", r.ID))
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// UnmarshalRule decodes a rule strictly (unknown fields are errors).
func UnmarshalRule(b []byte) (Rule, error) {
	var r Rule
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		if errors.Is(err, ErrInvalid) {
			return Rule{}, err
		}
		return Rule{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return r, nil
}

// matchPath reports whether rel (relative, slash-separated) matches glob.
func matchPath(glob, rel string) bool {
	if glob == "" || glob == "**" {
		return true
	}
	if !strings.Contains(glob, "/") {
		ok, _ := path.Match(glob, path.Base(rel))
		return ok
	}
	return matchSegs(strings.Split(glob, "/"), strings.Split(rel, "/"))
}

func matchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(segs); i++ {
				if matchSegs(rest, segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// errnoValue finds the errno named name, by asking x/sys/unix for the name
// of each number (it has no reverse table).
func errnoValue(name string) syscall.Errno {
	for i := syscall.Errno(1); i < 4096; i++ {
		if unix.ErrnoName(i) == name {
			return i
		}
	}
	return 0
}
