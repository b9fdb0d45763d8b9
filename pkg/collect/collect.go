package collect

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
)

// Options tune a collection.
type Options struct {
	// DataDirs are data directories to include besides the run
	// directory's own (backing/, data/), e.g. a live NFS mount.
	DataDirs []string
	// Run runs a command for its output (default cmdrun.Output).
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// ReadFile reads a /proc file (default os.ReadFile).
	ReadFile func(string) ([]byte, error)
	// Now stamps the bundle's name (default time.Now).
	Now func() time.Time
	// MaxFileBytes skips larger files (default 1 GiB).
	MaxFileBytes int64
}

// Commands are the machine state captured with each bundle.
var Commands = [][]string{
	{"iptables-save"},
	{"ip6tables-save"},
	{"ip", "route", "show", "table", "all"},
	{"ip", "-6", "route", "show", "table", "all"},
	{"ip", "netns", "list"},
}

// ProcFiles are copied as they are.
var ProcFiles = []string{"/proc/self/mountstats", "/proc/self/mountinfo"}

// Collect writes runDir/collect-<ts>.tar.gz and returns its path. Missing
// tools and files are noted in the bundle's MANIFEST, not fatal.
func Collect(ctx context.Context, runDir string, o Options) (string, error) {
	if o.Run == nil {
		o.Run = cmdrun.Output
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = 1 << 30
	}
	runDir, err := filepath.Abs(runDir)
	if err != nil {
		return "", fmt.Errorf("run directory: %w", err)
	}
	st, err := os.Stat(runDir)
	if err != nil || !st.IsDir() {
		return "", fmt.Errorf("run directory %s: not a directory", runDir)
	}
	name := "collect-" + o.Now().UTC().Format("20060102T150405Z") + ".tar.gz"
	out := filepath.Join(runDir, name)
	tmp, err := os.CreateTemp(runDir, ".collect-*")
	if err != nil {
		return "", fmt.Errorf("creating bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	gz := gzip.NewWriter(tmp)
	tw := tar.NewWriter(gz)
	prefix := filepath.Base(runDir) + "/"
	var manifest []string
	note := func(format string, a ...any) { manifest = append(manifest, fmt.Sprintf(format, a...)) }

	add := func(name string, data []byte) error {
		hdr := &tar.Header{Name: prefix + name, Mode: 0o644, Size: int64(len(data)), ModTime: o.Now(), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	// The run directory: journal, reports, logs (with hs_err files),
	// faultfs backing and local data directories. Earlier bundles and the
	// (unmounted) mount point are left out.
	err = filepath.WalkDir(runDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			note("skipped %s: %v", p, err)
			return nil
		}
		rel, _ := filepath.Rel(runDir, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() && rel == "mnt" {
			return filepath.SkipDir
		}
		if strings.HasPrefix(d.Name(), "collect-") || strings.HasPrefix(d.Name(), ".collect-") {
			return nil
		}
		return addPath(tw, p, prefix+filepath.ToSlash(rel), d, o.MaxFileBytes, note)
	})
	if err != nil {
		tmp.Close()
		return "", fmt.Errorf("bundling %s: %w", runDir, err)
	}
	for i, dir := range o.DataDirs {
		base := fmt.Sprintf("extra-data-%d", i+1)
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				note("skipped %s: %v", p, err)
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			if rel == "." {
				return nil
			}
			return addPath(tw, p, prefix+base+"/"+filepath.ToSlash(rel), d, o.MaxFileBytes, note)
		})
		if err != nil {
			tmp.Close()
			return "", fmt.Errorf("bundling %s: %w", dir, err)
		}
		note("%s = %s", base, dir)
	}
	for _, c := range Commands {
		b, err := o.Run(ctx, c[0], c[1:]...)
		fn := "state/" + strings.Join(c, "_") + ".txt"
		if err != nil {
			note("%s: %v", strings.Join(c, " "), err)
			if len(b) == 0 {
				continue
			}
		}
		if err := add(fn, b); err != nil {
			tmp.Close()
			return "", err
		}
	}
	for _, f := range ProcFiles {
		b, err := o.ReadFile(f)
		if err != nil {
			note("%s: %v", f, err)
			continue
		}
		if err := add("state/"+strings.ReplaceAll(strings.TrimPrefix(f, "/proc/self/"), "/", "_")+".txt", b); err != nil {
			tmp.Close()
			return "", err
		}
	}
	sort.Strings(manifest)
	head := fmt.Sprintf("nfslab collect of %s at %s\n", runDir, o.Now().UTC().Format(time.RFC3339))
	if err := add("MANIFEST.txt", []byte(head+strings.Join(manifest, "\n")+"\n")); err != nil {
		tmp.Close()
		return "", err
	}
	if err := errors.Join(tw.Close(), gz.Close(), tmp.Sync(), tmp.Close()); err != nil {
		return "", fmt.Errorf("writing bundle: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("writing bundle: %w", err)
	}
	return out, nil
}

func addPath(tw *tar.Writer, p, name string, d fs.DirEntry, maxBytes int64, note func(string, ...any)) error {
	info, err := d.Info()
	if err != nil {
		note("skipped %s: %v", p, err)
		return nil
	}
	switch {
	case d.IsDir():
		return tw.WriteHeader(&tar.Header{Name: name + "/", Mode: 0o755, ModTime: info.ModTime(), Typeflag: tar.TypeDir})
	case !info.Mode().IsRegular():
		note("skipped %s: not a regular file", p)
		return nil
	case info.Size() > maxBytes:
		note("skipped %s: %d bytes is over the limit", p, info.Size())
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		note("skipped %s: %v", p, err)
		return nil
	}
	defer f.Close()
	hdr, err := tar.FileInfoHeader(info, "")
	if err != nil {
		return err
	}
	hdr.Name = name
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	// A file that shrinks while being read would corrupt the archive;
	// copy exactly Size bytes, padding with zeros.
	n, err := io.Copy(tw, io.LimitReader(f, info.Size()))
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if n < info.Size() {
		if _, err := tw.Write(make([]byte, info.Size()-n)); err != nil {
			return err
		}
		note("%s shrank while being read", p)
	}
	return nil
}
