package container

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeJRE lays out a Debian-like JRE: bin/java behind the alternatives
// symlink, configuration linked to /etc, a dangling link to a package not
// installed, a link to a directory.
func fakeJRE(t *testing.T) (java, home, classDir string) {
	t.Helper()
	d := t.TempDir()
	home = filepath.Join(d, "usr/lib/jvm/java-21")
	etc := filepath.Join(d, "etc/java-21")
	for _, p := range []string{home + "/bin", home + "/lib/server", home + "/conf/security", etc, d + "/bin", d + "/classes"} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	write(home+"/bin/java", "#!java", 0o755)
	write(home+"/bin/keytool", "#!keytool", 0o755)
	write(home+"/lib/modules", strings.Repeat("m", 1<<16), 0o644)
	write(home+"/lib/server/libjvm.so", "jvm", 0o644)
	write(etc+"/java.security", "security=1", 0o644)
	write(home+"/release", "JAVA_VERSION=\"21\"", 0o644)
	link(etc+"/java.security", home+"/conf/security/java.security")
	link("../../openjdk-21/src.zip", home+"/lib/src.zip")
	link(etc, home+"/lib/etc-dir")
	java = filepath.Join(d, "bin/java")
	link(home+"/bin/java", java)
	classDir = d + "/classes"
	write(classDir+"/JournalProbe.class", "class", 0o644)
	return java, home, classDir
}

// The probe image holds the JRE's runtime files at their own paths, links
// resolved (configuration from /etc as regular files), the dangling and
// directory links left out, the probe's classes and its two directories;
// the same files give the same tag, a changed probe a new one.
func TestProbeImage(t *testing.T) {
	java, home, classDir := fakeJRE(t)
	spec, inImage, err := ProbeRootfs(java, classDir)
	if err != nil {
		t.Fatal(err)
	}
	if inImage != home+"/bin/java" {
		t.Errorf("java in the image = %s, want %s/bin/java", inImage, home)
	}
	var buf bytes.Buffer
	if err := WriteRootfs(context.Background(), &buf, spec); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	content := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got["/"+strings.TrimSuffix(h.Name, "/")] = h
		content["/"+strings.TrimSuffix(h.Name, "/")] = string(b)
	}
	for _, want := range []string{home + "/bin/java", home + "/lib/modules", home + "/lib/server/libjvm.so",
		home + "/conf/security/java.security", home + "/release", ProbeClassDir + "/JournalProbe.class", ProbeDataDir, ProbeWorkDir} {
		if got[want] == nil {
			t.Errorf("rootfs lacks %s", want)
		}
	}
	for _, unwanted := range []string{home + "/bin/keytool", home + "/lib/src.zip", home + "/lib/etc-dir"} {
		if got[unwanted] != nil {
			t.Errorf("rootfs has %s", unwanted)
		}
	}
	if h := got[home+"/conf/security/java.security"]; h == nil || h.Typeflag != tar.TypeReg || content[home+"/conf/security/java.security"] != "security=1" {
		t.Errorf("java.security is not the /etc file's content as a regular file: %+v", h)
	}
	if h := got[home+"/bin/java"]; h == nil || h.Mode != 0o755 {
		t.Errorf("java's mode is not kept: %+v", h)
	}
	if h := got[home+"/lib/modules"]; h == nil || h.Mode != 0o644 || h.Size != 1<<16 {
		t.Errorf("modules header %+v, want mode 0644 and its full size", h)
	}

	f := NewFake(nil)
	ref, err := EnsureOwnImage(context.Background(), f, OwnProbeImage, spec)
	if err != nil || !strings.HasPrefix(ref, OwnImageRepo+"probe:") || len(ref) != len(OwnImageRepo+"probe:")+16 {
		t.Fatalf("EnsureOwnImage = %q, %v", ref, err)
	}
	again, err := EnsureOwnImage(context.Background(), f, OwnProbeImage, spec)
	if err != nil || again != ref || strings.Count(strings.Join(f.Calls, "\n"), "import ") != 1 {
		t.Errorf("the same files: %q, %v, calls %v; want %q imported once", again, err, f.Calls, ref)
	}
	if err := os.WriteFile(classDir+"/JournalProbe.class", []byte("class v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := EnsureOwnImage(context.Background(), f, OwnProbeImage, spec)
	if err != nil || changed == ref {
		t.Errorf("a changed probe kept tag %q (%v)", changed, err)
	}
}

func TestProbeImageNeedsCompiledProbe(t *testing.T) {
	java, _, _ := fakeJRE(t)
	_, _, err := ProbeRootfs(java, t.TempDir())
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "no compiled probe") {
		t.Errorf("ProbeRootfs without classes: %v", err)
	}
	if _, _, err := ProbeRootfs("/nonexistent/java", t.TempDir()); err == nil || !strings.Contains(err.Error(), "/nonexistent/java") {
		t.Errorf("ProbeRootfs with a missing java: %v", err)
	}
}
