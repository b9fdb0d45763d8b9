package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	probesrc "github.com/nfslab/nfslab/probe"
)

// OwnProbeImage names nfslab's JVM journal probe image (EnsureOwnImage).
const OwnProbeImage = "probe"

// Paths inside the probe image and its containers.
const (
	// ProbeClassDir holds the compiled JournalProbe (pkg/probe.Build).
	ProbeClassDir = "/opt/nfslab/probe"
	// ProbeDataDir is where the storage under test is bind-mounted: the
	// journal's directory, as /usr/local/zeebe/data is the broker's.
	ProbeDataDir = "/data"
	// ProbeWorkDir is the JVM's working directory and -XX:ErrorFile
	// directory: hs_err_pid<pid>.log lands here, off the storage under
	// test, and is copied out after a crash.
	ProbeWorkDir = "/work"
)

// ProbeRootfs is the rootfs of nfslab's probe image: the JRE that java (a
// path on this machine, symlinks allowed) belongs to, at its own path, and
// the compiled probe in classDir at ProbeClassDir. The JRE is copied file
// by file (bin/java, lib/, conf/, release; symlinks followed) because a
// Debian JRE links its configuration to /etc and has dangling links to
// packages that are not installed; the lab VM's JRE has no jlink to make a
// smaller one. It returns the java path to run in the image.
func ProbeRootfs(java, classDir string) (RootfsSpec, string, error) {
	real, err := filepath.EvalSymlinks(java)
	if err != nil {
		return RootfsSpec{}, "", fmt.Errorf("building the probe image: locating java %s: %w", java, err)
	}
	home := filepath.Dir(filepath.Dir(real))
	if filepath.Base(filepath.Dir(real)) != "bin" {
		return RootfsSpec{}, "", fmt.Errorf("building the probe image: java %s is not in a JRE's bin directory", real)
	}
	if _, err := os.Stat(filepath.Join(classDir, probesrc.ClassName+".class")); err != nil {
		return RootfsSpec{}, "", fmt.Errorf("building the probe image: no compiled probe in %s: %w", classDir, err)
	}
	files := []string{real}
	for _, sub := range []string{"lib", "conf", "release"} {
		fs, err := jreFiles(filepath.Join(home, sub))
		if err != nil {
			return RootfsSpec{}, "", fmt.Errorf("building the probe image from %s: %w", home, err)
		}
		files = append(files, fs...)
	}
	return RootfsSpec{
		Trees:     map[string]string{classDir: ProbeClassDir},
		HostFiles: files,
		Dirs:      []string{ProbeDataDir, ProbeWorkDir},
	}, real, nil
}

// jreFiles lists the regular files below root (root itself if it is a
// file), following symlinks to files and skipping dangling ones and links
// to directories.
func jreFiles(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll // no conf/ or release: the JVM runs without
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() {
			return nil // a dangling link (src.zip without the JDK's sources) or a link to a directory
		}
		out = append(out, p)
		return nil
	})
	sort.Strings(out)
	return out, err
}
