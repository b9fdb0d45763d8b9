package scenario

import (
	"fmt"
	"strconv"
	"strings"
)

// Placeholders a fault's dst or in may use: the storage server's address,
// broker N's address, the address of partition P's leader.
const (
	RefNFSServer = "$nfs-server"
	RefBroker    = "$broker:"
	RefLeader    = "$leader:"
)

// Ref is a parsed $placeholder. Kind is RefNFSServer, RefBroker or
// RefLeader; N is the broker index (from 0) or the partition (from 1).
type Ref struct {
	Kind string
	N    int
}

func (r Ref) String() string {
	if r.Kind == RefNFSServer {
		return r.Kind
	}
	return r.Kind + strconv.Itoa(r.N)
}

// IsRef reports whether s is written as a $placeholder (valid or not).
func IsRef(s string) bool { return strings.HasPrefix(s, "$") }

// ParseRef parses a $placeholder: $nfs-server, $broker:N or $leader:P. It
// is the one parser of them; whether the index exists is for the scenario
// (Validate) or the running lab to say.
func ParseRef(s string) (Ref, error) {
	if s == RefNFSServer {
		return Ref{Kind: RefNFSServer}, nil
	}
	for _, k := range []struct {
		kind, what string
		min        int
	}{{RefBroker, "broker index", 0}, {RefLeader, "partition", 1}} {
		digits, ok := strings.CutPrefix(s, k.kind)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(digits)
		if err != nil || n < k.min || digits != strconv.Itoa(n) {
			return Ref{}, fmt.Errorf("%s: %s %q is not a number from %d", s, k.what, digits, k.min)
		}
		return Ref{Kind: k.kind, N: n}, nil
	}
	return Ref{}, fmt.Errorf("unknown reference %q (want %s, %sN or %sP)", s, RefNFSServer, RefBroker, RefLeader)
}
