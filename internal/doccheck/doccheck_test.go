package doccheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const root = "../.."

// makefileTags is the TAGS line of the Makefile: the one list of tags.
func makefileTags(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TAGS := (.+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("Makefile has no TAGS := line")
	}
	return strings.TrimSpace(string(m[1]))
}

// docFiles are the documents whose commands a reader copies.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append(files, filepath.Join(root, "README.md"), filepath.Join(root, "BENCHMARKS.md"),
		filepath.Join(root, "bench", "faults", "doc.go"))
}

var goCmdRE = regexp.MustCompile(`\bgo (build|test|vet|install|run)\b`)

// splitShell splits a line at ;, && , || and | outside quotes: each part is
// one command.
func splitShell(line string) []string {
	var parts []string
	var cur strings.Builder
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == ';' || r == '&' || r == '|':
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	return append(parts, cur.String())
}

// commands returns the code of a document that contains a go command: each
// line of a fenced or indented code block (continuation lines joined), and
// each inline code span (a span may run over a line break).
func commands(text string) []string {
	var out []string
	var inline strings.Builder
	flushInline := func() {
		spans := strings.Split(inline.String(), "`")
		for i := 1; i < len(spans); i += 2 {
			out = append(out, spans[i])
		}
		inline.Reset()
	}
	lines := strings.Split(text, "\n")
	fenced := false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trim := strings.TrimSpace(l)
		if strings.HasPrefix(trim, "```") {
			fenced = !fenced
			flushInline()
			continue
		}
		// Go doc comments: "//\t" marks a code line.
		l = strings.TrimPrefix(l, "//")
		code := fenced || strings.HasPrefix(l, "    ") || strings.HasPrefix(l, "\t")
		if !code {
			if trim == "" {
				flushInline()
			}
			inline.WriteString(" " + l)
			continue
		}
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		out = append(out, l)
	}
	flushInline()
	var cmds []string
	for _, c := range out {
		c = strings.Join(strings.Fields(c), " ")
		for _, part := range splitShell(c) {
			if goCmdRE.MatchString(part) {
				cmds = append(cmds, strings.TrimSpace(part))
			}
		}
	}
	return cmds
}

// TestDocsGoCommandsCarryTags: `go build ./...` and friends fail without the
// podman bindings' tags, so every go command a document shows carries them
// (literally, or as "$TAGS" defined in the same document) and CGO_ENABLED=0.
func TestDocsGoCommandsCarryTags(t *testing.T) {
	tags := makefileTags(t)
	definition := "TAGS='" + tags + "'"
	n := 0
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, f)
		for _, c := range commands(string(b)) {
			n++
			before, _, _ := strings.Cut(c, goCmdRE.FindString(c))
			if !regexp.MustCompile(`(^|\s)CGO_ENABLED=0\s`).MatchString(before + " ") {
				t.Errorf("%s: %q lacks CGO_ENABLED=0 before go", name, c)
			}
			switch {
			case strings.Contains(c, "-tags '"+tags+"'"), strings.Contains(c, `-tags "`+tags+`"`):
			case regexp.MustCompile(`-tags "\$TAGS( [a-z_]+)*"`).MatchString(c):
				if !strings.Contains(string(b), definition) {
					t.Errorf("%s: %q uses $TAGS, but the document does not set %s", name, c, definition)
				}
			default:
				t.Errorf("%s: %q lacks -tags \"$TAGS\" (the Makefile's tags)", name, c)
			}
		}
	}
	if n < 10 {
		t.Fatalf("found only %d go commands in the docs: the extraction is broken", n)
	}
}

func TestCommandsExtraction(t *testing.T) {
	doc := "Run `CGO_ENABLED=0 go\ntest -tags \"$TAGS\" ./x` now.\n\n```sh\ncd x && go build \\\n  ./y\n```\n\n    go vet -run 'A|B' ./z\n"
	got := commands(doc)
	want := []string{`CGO_ENABLED=0 go test -tags "$TAGS" ./x`, "go build ./y", "go vet -run 'A|B' ./z"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("commands = %q, want %q", got, want)
	}
}

// TestPackagesWithoutBindingsNeedNoTags: only the packages that run
// containers import the podman bindings; the daemon, its client, cleanup and
// the fault benchmark build with a plain `go build`.
func TestPackagesWithoutBindingsNeedNoTags(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	pkgs := []string{"./bench/faults", "./pkg/daemon", "./pkg/client", "./pkg/cleanup", "./pkg/container", "./pkg/engine", "./pkg/netfault"}
	cmd := exec.Command(goBin, append([]string{"list", "-deps"}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %v: %v\n%s", pkgs, err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/containers/podman/") || strings.HasPrefix(dep, "go.podman.io/") ||
			strings.HasPrefix(dep, "github.com/proglottis/gpgme") {
			t.Errorf("%v pull in %s: they would need the bindings' build tags again", pkgs, dep)
		}
	}
}
