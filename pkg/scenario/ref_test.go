package scenario

import (
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"$nfs-server": {Kind: RefNFSServer},
		"$broker:0":   {Kind: RefBroker, N: 0},
		"$broker:12":  {Kind: RefBroker, N: 12},
		"$leader:1":   {Kind: RefLeader, N: 1},
	} {
		got, err := ParseRef(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseRef(%q) = %+v (%s), %v; want %+v", in, got, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"$printer":    `unknown reference "$printer"`,
		"$broker:":    `broker index "" is not a number`,
		"$broker:-1":  `broker index "-1"`,
		"$broker:01":  `broker index "01"`,
		"$leader:0":   `partition "0" is not a number from 1`,
		"$leader:one": `partition "one"`,
		"nfs-server":  `unknown reference`,
	} {
		if _, err := ParseRef(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseRef(%q) error = %v, want %q", in, err, msg)
		}
	}
}
