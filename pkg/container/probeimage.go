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

// ProbeSpec is a probe container: command (pkg/probe.Command with the
// image's java, ProbeClassDir, ProbeWorkDir and ProbeDataDir) run in
// image with dataDir, a host directory on the storage under test,
// bind-mounted at ProbeDataDir, as the workshop mounted Zeebe's data
// directory. Equivalent to:
//
//	podman run --init --network none --ulimit core=0 -w /work \
//	  -v DATADIR:/data --label io.nfslab.role=probe ... IMAGE java ... JournalProbe --dir /data ...
func ProbeSpec(name, image, runID, dataDir string, command []string) Spec {
	return Spec{
		Name:    name,
		Image:   image,
		Command: command,
		Labels:  OwnedLabels(runID, RoleProbe, nil),
		Mounts:  []Mount{{Source: dataDir, Target: ProbeDataDir}},
		// No bridge networking: with netavark it would add firewall rules
		// next to the faults under test, and the probe talks to nobody.
		Network: NetworkNone,
		WorkDir: ProbeWorkDir,
		// As PID 1 the JVM would ignore signals it has no handler for: its
		// abort() after a SIGBUS would end in exit 1 instead of 134.
		// catatonit passes the JVM's status through, 128+N for signal N.
		Init: true,
		// No core file, but core dumps stay "on" for the JVM: with
		// -XX:-CreateCoredumpOnCrash it exits 1 instead of abort()ing.
		Rlimits: append(DefaultRlimits(), Rlimit{Name: "core", Soft: 0, Hard: 0}),
	}
}
