package mount

import (
	"strings"
	"testing"
)

const sampleMountInfo = `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
101 25 0:55 / /run/nfslab/mnt/zeebe rw,relatime shared:60 - nfs4 10.213.0.2:/run/nfslab/export/nfsd rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,soft,proto=tcp,timeo=10,retrans=2,sec=sys,clientaddr=10.213.0.1,local_lock=none,addr=10.213.0.2
102 25 0:56 /sub /tmp/with\040space/and\011tab\134x rw - fuse.nfslab-faultfs /back\040dir rw,user_id=0,group_id=0
103 25 0:57 / /tmp/opt rw master:3 propagate_from:2 unbindable - tmpfs tmpfs rw
`

func TestParseMountInfo(t *testing.T) {
	mps, err := ParseMountInfo(strings.NewReader(sampleMountInfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(mps) != 5 {
		t.Fatalf("got %d mounts, want 5", len(mps))
	}
	nfs := mps[2]
	if nfs.ID != 101 || nfs.ParentID != 25 || nfs.Path != "/run/nfslab/mnt/zeebe" || nfs.FSType != "nfs4" ||
		nfs.Source != "10.213.0.2:/run/nfslab/export/nfsd" || !strings.Contains(nfs.SuperOptions, "timeo=10") {
		t.Errorf("nfs line parsed as %+v", nfs)
	}
	fuse := mps[3]
	if fuse.Path != "/tmp/with space/and\ttab\\x" || fuse.Root != "/sub" || fuse.Source != "/back dir" || fuse.FSType != "fuse.nfslab-faultfs" {
		t.Errorf("escaped line parsed as %+v", fuse)
	}
	// Several optional fields before the separator.
	if mps[4].FSType != "tmpfs" || mps[4].Path != "/tmp/opt" {
		t.Errorf("optional fields line parsed as %+v", mps[4])
	}
}

func TestParseMountInfoBad(t *testing.T) {
	for _, in := range []string{
		"22 1 0:21 / /proc rw shared:12 proc proc rw\n", // no separator
		"x 1 0:21 / /proc rw - proc proc rw\n",          // bad id
		"22 1 0:21 / /proc rw -\n",                      // too short
	} {
		if _, err := ParseMountInfo(strings.NewReader(in)); err == nil {
			t.Errorf("ParseMountInfo(%q) = nil error", in)
		}
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{"/a b", "/tab\there", `/back\slash`, "/nl\nx", "/plain"} {
		if got := unescapeOctal(escape(s)); got != s {
			t.Errorf("round trip %q -> %q -> %q", s, escape(s), got)
		}
	}
	if got := unescapeOctal(`/bad\9zz\04`); got != `/bad\9zz\04` {
		t.Errorf("malformed escapes must stay literal, got %q", got)
	}
}
