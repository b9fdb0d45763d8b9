package zeebe

import "testing"

func TestNodeNames(t *testing.T) {
	for _, n := range []int{0, 1, 8, 12} {
		got, err := ParseNodeName(NodeName(n))
		if err != nil || got != n {
			t.Errorf("ParseNodeName(NodeName(%d)) = %d, %v", n, got, err)
		}
	}
	if NodeName(2) != "broker-2" {
		t.Errorf("NodeName(2) = %q, want broker-2 (scenarios and log files use it)", NodeName(2))
	}
	for _, bad := range []string{"", "broker-", "broker--1", "broker-01", "broker-x", "Broker-1", "node-1", "broker-1 "} {
		if n, err := ParseNodeName(bad); err == nil {
			t.Errorf("ParseNodeName(%q) = %d, want an error", bad, n)
		}
	}
}
