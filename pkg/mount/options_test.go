package mount

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseNFSOptionsGood(t *testing.T) {
	tests := []struct {
		in, want string // want: String() after parse
	}{
		{"proto=tcp,port=2049,soft,timeo=10", "proto=tcp,port=2049,soft,timeo=10"},
		{DefaultNFSOptions, DefaultNFSOptions},
		{"nfsvers=3,proto=udp,hard", "vers=3,proto=udp,hard"},
		{"vers=4.1,rsize=1048576,wsize=65536,actimeo=0", "vers=4.1,actimeo=0,rsize=1048576,wsize=65536"},
		{"vers=4,retrans=0,nconnect=4,noac,lookupcache=none", "vers=4,retrans=0,nconnect=4,noac,lookupcache=none"},
		{"vers=4.2,addr=10.213.0.2,clientaddr=10.213.0.1", "vers=4.2,addr=10.213.0.2,clientaddr=10.213.0.1"},
		{"soft,ro,nosuid,noatime", "soft"}, // flags are mount(2) flags, not data
		{"port=0", ""},                     // port=0 is the default, as for the kernel
	}
	for _, tt := range tests {
		o, err := ParseNFSOptions(tt.in)
		if err != nil {
			t.Errorf("ParseNFSOptions(%q): %v", tt.in, err)
			continue
		}
		if got := o.String(); got != tt.want {
			t.Errorf("ParseNFSOptions(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseNFSOptionsBad(t *testing.T) {
	tests := []struct {
		in   string
		want string // substring of the error, naming the bad value
	}{
		{"", "empty option string"},
		{"soft,,timeo=10", "empty element"},
		{"soft,", "empty element"},
		{"soft,hard", "soft and hard contradict"},
		{"vers=5", `vers="5"`},
		{"vers=2", "NFSv2 is not supported"},
		{"vers=", `"vers" needs a value`},
		{"vers=4.2,nfsvers=4.1", `"vers" given twice`},
		{"timeo=10,timeo=20", `"timeo" given twice`},
		{"proto=sctp", `proto="sctp"`},
		{"proto=udp", "NFSv4 runs over TCP only"},
		{"vers=4.2,proto=udp", "NFSv4 runs over TCP only"},
		{"port=70000", "port=70000 is out of range"},
		{"port=-1", "port=-1 is out of range"},
		{"port=nfs", `port="nfs" is not a whole number`},
		{"timeo=0", "timeo=0 is 0.0 s"},
		{"timeo=-5", "timeo=-5 is -0.5 s"},
		{"timeo=6001", "timeo=6001 is 600.1 s"},
		{"timeo=1.5", `timeo="1.5" is not a whole number`},
		{"timeo", `"timeo" needs a value`},
		{"retrans=-1", "retrans=-1 must be 0..65535"},
		{"actimeo=-1", "actimeo=-1 must be 0..86400 seconds"},
		{"rsize=1000", "rsize=1000 bytes is out of range"},
		{"rsize=1536", "rsize=1536 bytes is not a multiple of 1024"},
		{"wsize=2097152", "wsize=2097152 bytes is out of range"},
		{"soft=yes", `"soft" takes no value`},
		{"sotf", `unknown NFS option "sotf"`},
		{"bg", `unknown NFS option "bg"`},
		{"addr=nfs.example", "not an IP address"},
		{"vers=3,clientaddr=10.0.0.1", "clientaddr=10.0.0.1 applies to NFSv4 only"},
		{"addr=10.0.0.1,clientaddr=::1", "different IP families"},
		{"ro,rw", "ro and rw contradict"},
	}
	for _, tt := range tests {
		_, err := ParseNFSOptions(tt.in)
		if err == nil {
			t.Errorf("ParseNFSOptions(%q) = nil error, want one containing %q", tt.in, tt.want)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseNFSOptions(%q) error %v does not wrap ErrInvalid", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseNFSOptions(%q) = %v, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func TestUnitsAndGiveUp(t *testing.T) {
	o, err := ParseNFSOptions(DefaultNFSOptions)
	if err != nil {
		t.Fatal(err)
	}
	if o.Timeout() != time.Second {
		t.Errorf("timeo=10 Timeout() = %s, want 1s", o.Timeout())
	}
	// TCP: 1 s + 2 s + 3 s for retrans=2.
	if got := o.GiveUpAfter(); got != 6*time.Second {
		t.Errorf("GiveUpAfter() = %s, want 6s", got)
	}
	d := o.Describe()
	for _, want := range []string{"timeo=10 is 1.0 s", "EIO after about 6s", "NFSv4.2 over tcp"} {
		if !strings.Contains(d, want) {
			t.Errorf("Describe() = %q, want it to contain %q", d, want)
		}
	}
	u, _ := ParseNFSOptions("vers=3,proto=udp,soft,timeo=10,retrans=2")
	if got := u.GiveUpAfter(); got != 7*time.Second { // 1 + 2 + 4
		t.Errorf("udp GiveUpAfter() = %s, want 7s", got)
	}
	h, _ := ParseNFSOptions("hard,timeo=600")
	if h.GiveUpAfter() != 0 || !strings.Contains(h.Describe(), "retry forever") {
		t.Errorf("hard mount: GiveUpAfter %s, Describe %q", h.GiveUpAfter(), h.Describe())
	}
}

func TestFSTypeAndElements(t *testing.T) {
	o, _ := ParseNFSOptions("vers=3,nosuid,soft")
	o.Addr = netip.MustParseAddr("10.0.0.5")
	o.ClientAddr = netip.MustParseAddr("10.0.0.1") // ignored for v3 in Data
	if o.FSType() != "nfs" {
		t.Errorf("FSType = %q, want nfs", o.FSType())
	}
	if got := strings.Join(o.Elements(), ","); got != "nosuid,vers=3,soft,addr=10.0.0.5" {
		t.Errorf("Elements = %q", got)
	}
	v4, _ := ParseNFSOptions("soft")
	if v4.FSType() != "nfs4" || v4.MajorVersion() != 4 {
		t.Errorf("unset vers: FSType %q major %d, want nfs4 4", v4.FSType(), v4.MajorVersion())
	}
}
