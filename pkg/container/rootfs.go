package container

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/nfslab/nfslab/internal/cmdrun"
)

// RootfsSpec describes a minimal root filesystem made from host files, for
// images built with Import where no registry can be reached.
type RootfsSpec struct {
	// Trees copies host directories (key) to paths in the image (value);
	// symlinks are followed.
	Trees map[string]string
	// Files adds files with the given content (mode 0644).
	Files map[string][]byte
	// Executables are host files copied to the same path (mode 0755).
	Executables []string
	// HostFiles are host files copied to the same path with their own
	// mode (symlinks followed), e.g. a JRE's files picked one by one.
	HostFiles []string
	// Dirs are empty directories to create (mode 0755), e.g. a work dir.
	Dirs []string
}

// WriteRootfs writes spec as a tarball to w. The shared libraries that
// `ldd` names for every ELF file copied are added at their host paths, so
// the result runs without a distribution underneath.
func WriteRootfs(ctx context.Context, w io.Writer, spec RootfsSpec) error {
	tw := tar.NewWriter(w)
	seen := map[string]bool{}
	var elfs []string
	addDir := func(p string, mode int64) error {
		p = strings.TrimPrefix(path.Clean(p), "/")
		if p == "" || p == "." || seen[p] {
			return nil
		}
		if parent := path.Dir(p); parent != "." {
			if err := addDirs(tw, seen, parent); err != nil {
				return err
			}
		}
		seen[p] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode})
	}
	addFile := func(hostPath, imgPath string, mode int64) error {
		imgPath = strings.TrimPrefix(path.Clean(imgPath), "/")
		if seen[imgPath] {
			return nil
		}
		if err := addDirs(tw, seen, path.Dir(imgPath)); err != nil {
			return err
		}
		// Streamed, not read whole: a JRE's module image is over 100 MB.
		f, err := os.Open(hostPath)
		if err != nil {
			return fmt.Errorf("reading %s for rootfs: %w", hostPath, err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("reading %s for rootfs: %w", hostPath, err)
		}
		if mode < 0 {
			mode = int64(st.Mode().Perm())
		}
		head := make([]byte, len(elf.ELFMAG))
		n, _ := io.ReadFull(f, head)
		if isELF(head[:n]) {
			elfs = append(elfs, hostPath)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("reading %s for rootfs: %w", hostPath, err)
		}
		seen[imgPath] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: imgPath, Mode: mode, Size: st.Size()}); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, f, st.Size()); err != nil {
			return fmt.Errorf("reading %s for rootfs: %w", hostPath, err)
		}
		return nil
	}
	if err := addDir("/tmp", 0o1777); err != nil {
		return err
	}
	for _, d := range spec.Dirs {
		if err := addDir(d, 0o755); err != nil {
			return err
		}
	}
	srcs := make([]string, 0, len(spec.Trees))
	for src := range spec.Trees {
		srcs = append(srcs, src)
	}
	sort.Strings(srcs)
	for _, src := range srcs {
		dst := spec.Trees[src]
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			target := path.Join(dst, filepath.ToSlash(rel))
			st, err := os.Stat(p) // follows symlinks
			if err != nil {
				return fmt.Errorf("rootfs: %w", err)
			}
			if st.IsDir() {
				if d.Type()&fs.ModeSymlink != 0 {
					return fmt.Errorf("rootfs: symlinked directory %s is not supported", p)
				}
				return addDir(target, 0o755)
			}
			return addFile(p, target, int64(st.Mode().Perm()))
		})
		if err != nil {
			return fmt.Errorf("copying %s into rootfs: %w", src, err)
		}
	}
	names := make([]string, 0, len(spec.Files))
	for n := range spec.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := strings.TrimPrefix(path.Clean(n), "/")
		if err := addDirs(tw, seen, path.Dir(p)); err != nil {
			return err
		}
		seen[p] = true
		data := spec.Files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	for _, e := range spec.Executables {
		if err := addFile(e, e, 0o755); err != nil {
			return err
		}
	}
	for _, h := range spec.HostFiles {
		if err := addFile(h, h, -1); err != nil { // -1: the host file's mode
			return err
		}
	}
	libs, err := sharedLibs(ctx, elfs)
	if err != nil {
		return err
	}
libs:
	for _, l := range libs {
		for src := range spec.Trees {
			if strings.HasPrefix(l, src+"/") || strings.Contains(l, "/../") {
				continue libs // already copied with its tree
			}
		}
		if err := addFile(l, l, 0o755); err != nil {
			return err
		}
	}
	return tw.Close()
}

func addDirs(tw *tar.Writer, seen map[string]bool, p string) error {
	p = strings.TrimPrefix(path.Clean(p), "/")
	if p == "" || p == "." || seen[p] {
		return nil
	}
	if err := addDirs(tw, seen, path.Dir(p)); err != nil {
		return err
	}
	seen[p] = true
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755})
}

func isELF(b []byte) bool { return bytes.HasPrefix(b, []byte(elf.ELFMAG)) }

var lddPathRE = regexp.MustCompile(`(?m)(?:=>\s*)?(/\S+)\s+\(0x`)

// sharedLibs runs ldd on the files and returns the libraries it resolves,
// which include the dynamic loader. One ldd for all: a JRE has dozens of
// libraries, and each ldd is a shell script (slow in an emulated VM).
func sharedLibs(ctx context.Context, files []string) ([]string, error) {
	set := map[string]bool{}
	if len(files) > 0 {
		// ldd exits non-zero when a file is static ("not a dynamic
		// executable") and still lists the others.
		out, _ := cmdrun.Output(ctx, "ldd", files...)
		for _, m := range lddPathRE.FindAllStringSubmatch(string(out), -1) {
			set[m[1]] = true
		}
	}
	libs := make([]string, 0, len(set))
	for l := range set {
		libs = append(libs, l)
	}
	sort.Strings(libs)
	return libs, nil
}
