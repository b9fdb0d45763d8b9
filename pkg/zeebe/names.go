package zeebe

import (
	"fmt"
	"strconv"
	"strings"
)

// nodePrefix starts every broker's name.
const nodePrefix = "broker-"

// NodeName is broker node n's name as scenarios (container:, in:), the
// run's log files and data directories write it: "broker-N".
func NodeName(n int) string { return nodePrefix + strconv.Itoa(n) }

// ParseNodeName reads a name NodeName made and returns the node ID.
func ParseNodeName(s string) (int, error) {
	digits, ok := strings.CutPrefix(s, nodePrefix)
	n, err := strconv.Atoi(digits)
	if !ok || err != nil || n < 0 || digits != strconv.Itoa(n) {
		return 0, fmt.Errorf("%q is not a broker name like %s", s, NodeName(0))
	}
	return n, nil
}
