package vm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// ErrNoMirror is returned when no configured apt source serves the suite.
var ErrNoMirror = errors.New("no Debian mirror configured")

// aptSource is one "deb" entry of the machine's apt configuration.
type aptSource struct {
	URI        string
	Suites     []string
	Components []string
}

// DetectMirror returns the URI of the first Debian archive in the machine's
// apt configuration (/etc/apt/sources.list one-line entries, then the deb822
// files in /etc/apt/sources.list.d/*.sources and *.list) that serves suite
// with the main component. fsys is rooted at "/" (os.DirFS("/") for real).
// Security and updates suites do not count: debootstrap needs the release.
// When no source names suite, the first one serving another of the lab's
// releases (Guests) with main is used: the host's Debian mirror.
func DetectMirror(fsys fs.FS, suite string) (string, error) {
	var srcs []aptSource
	if b, err := fs.ReadFile(fsys, "etc/apt/sources.list"); err == nil {
		srcs = append(srcs, parseOneLine(b)...)
	}
	entries, _ := fs.ReadDir(fsys, "etc/apt/sources.list.d")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := fs.ReadFile(fsys, path.Join("etc/apt/sources.list.d", n))
		if err != nil {
			continue
		}
		switch {
		case strings.HasSuffix(n, ".sources"):
			srcs = append(srcs, parseDeb822(b)...)
		case strings.HasSuffix(n, ".list"):
			srcs = append(srcs, parseOneLine(b)...)
		}
	}
	for _, s := range srcs {
		if contains(s.Suites, suite) && contains(s.Components, "main") {
			return strings.TrimRight(s.URI, "/"), nil
		}
	}
	// A machine lists only its own release (a bookworm host building the
	// trixie guest): an archive that serves one of the lab's releases with
	// main is a Debian mirror and serves the others too.
	for _, s := range srcs {
		if !contains(s.Components, "main") {
			continue
		}
		for _, g := range Guests() {
			if contains(s.Suites, g.Suite) {
				return strings.TrimRight(s.URI, "/"), nil
			}
		}
	}
	return "", fmt.Errorf("%w for suite %s (nor for %s) with component main in /etc/apt/sources.list or /etc/apt/sources.list.d (pass --mirror)",
		ErrNoMirror, suite, strings.Join(GuestNames(), ", "))
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// parseOneLine reads "deb [options] URI SUITE COMPONENT..." lines.
func parseOneLine(b []byte) []aptSource {
	var out []aptSource
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // [arch=amd64 signed-by=...]
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) < 2 || !isHTTP(f[0]) {
			continue
		}
		out = append(out, aptSource{URI: f[0], Suites: []string{f[1]}, Components: f[2:]})
	}
	return out
}

// parseDeb822 reads the stanzas of a .sources file.
func parseDeb822(b []byte) []aptSource {
	var out []aptSource
	flush := func(st map[string]string) {
		if len(st) == 0 {
			return
		}
		if t, ok := st["types"]; ok && !contains(strings.Fields(t), "deb") {
			return
		}
		if strings.EqualFold(st["enabled"], "no") {
			return
		}
		for _, uri := range strings.Fields(st["uris"]) {
			if isHTTP(uri) {
				out = append(out, aptSource{URI: uri, Suites: strings.Fields(st["suites"]), Components: strings.Fields(st["components"])})
			}
		}
	}
	st := map[string]string{}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush(st)
			st, last = map[string]string{}, ""
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' { // continuation
			if last != "" {
				st[last] += " " + strings.TrimSpace(line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = strings.ToLower(strings.TrimSpace(k))
		st[last] = strings.TrimSpace(v)
	}
	flush(st)
	return out
}

func isHTTP(uri string) bool {
	return strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")
}
