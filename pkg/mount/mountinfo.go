package mount

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MountInfoPath is where the kernel reports this process's mounts.
const MountInfoPath = "/proc/self/mountinfo"

// MountPoint is one line of /proc/self/mountinfo.
type MountPoint struct {
	ID, ParentID int
	Dev          string // st_dev of the filesystem, "major:minor" (a FUSE connection's minor names it in fusectl)
	Root         string // root of the mount within its filesystem
	Path         string // mount point, unescaped
	Options      string // per-mount options (rw,nosuid,...)
	FSType       string // e.g. "nfs4", "fuse.faultfs"
	Source       string // e.g. "10.213.0.2:/export", unescaped
	SuperOptions string // per-superblock options (for NFS: vers=,addr=,...)
}

// ParseMountInfo parses the format of proc(5) mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Paths are unescaped (\040 is a space, \011 a tab, \012 a newline, \134 a
// backslash).
func ParseMountInfo(r io.Reader) ([]MountPoint, error) {
	var out []MountPoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		f := strings.Fields(text)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 10 || sep < 0 || len(f) < sep+4 {
			return nil, fmt.Errorf("parsing mountinfo line %d %q: too few fields", line, text)
		}
		id, err1 := strconv.Atoi(f[0])
		pid, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("parsing mountinfo line %d %q: bad mount id", line, text)
		}
		out = append(out, MountPoint{
			ID: id, ParentID: pid,
			Dev:          f[2],
			Root:         unescapeOctal(f[3]),
			Path:         unescapeOctal(f[4]),
			Options:      f[5],
			FSType:       unescapeOctal(f[sep+1]),
			Source:       unescapeOctal(f[sep+2]),
			SuperOptions: f[sep+3],
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return out, nil
}

// unescapeOctal undoes the kernel's \ooo escaping of mountinfo fields.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
