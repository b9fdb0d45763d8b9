package nfsserver

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FaultTarget is the part of the export FaultEIO fails: a file (Path), a range
// of sectors (Blocks), or sectors of a file (both). It is specified once
// here and used by the CLI flags, the scenario step (eio:) and the
// daemon's request.
type FaultTarget struct {
	// Path is a file inside the export, relative to it (or absolute below
	// the export directory).
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Blocks is a range of 512-byte sectors, "FIRST-LAST" (inclusive) or
	// "FIRST-" (to the end): of the file when Path is set (sector 8 is the
	// file's byte 4096), else of the export's device (as `dmsetup table`
	// counts them).
	Blocks string `yaml:"blocks,omitempty" json:"blocks,omitempty"`
}

// IsZero reports whether t names nothing.
func (t FaultTarget) IsZero() bool { return t == FaultTarget{} }

// sectorRange is an inclusive range of 512-byte sectors; last < 0 is open.
type sectorRange struct{ first, last int64 }

// Validate names the bad value; fault is the fault t goes with.
func (t FaultTarget) Validate(fault ServerFault) error {
	if fault != FaultEIO {
		if !t.IsZero() {
			return invalid("path %q and blocks %q apply to the eio fault only, not %s", t.Path, t.Blocks, fault)
		}
		return nil
	}
	if t.IsZero() {
		return invalid("eio needs a path (a file in the export) or blocks (FIRST-LAST sectors of the export device)")
	}
	if t.Path != "" {
		if _, err := t.rel(); err != nil {
			return err
		}
	}
	if t.Blocks != "" {
		if _, err := parseBlocks(t.Blocks); err != nil {
			return err
		}
	}
	return nil
}

// rel is Path relative to the export, clean; it must not leave it.
func (t FaultTarget) rel() (string, error) {
	p := t.Path
	if strings.ContainsRune(p, 0) || p == "" {
		return "", invalid("eio path %q is empty or has a NUL byte", p)
	}
	if path.IsAbs(p) {
		return p, nil // checked against the export directory in resolve
	}
	c := path.Clean(p)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", invalid("eio path %q is not a file inside the export", p)
	}
	return c, nil
}

// resolve returns Path as an absolute path inside dir.
func (t FaultTarget) resolve(dir string) (string, error) {
	r, err := t.rel()
	if err != nil {
		return "", err
	}
	if path.IsAbs(r) {
		c := path.Clean(r)
		if !strings.HasPrefix(c, path.Clean(dir)+"/") {
			return "", invalid("eio path %q is not inside the export %s", t.Path, dir)
		}
		return c, nil
	}
	return path.Join(dir, r), nil
}

// parseBlocks reads "FIRST-LAST" or "FIRST-".
func parseBlocks(s string) (sectorRange, error) {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	last, err2 := int64(-1), error(nil)
	if strings.TrimSpace(b) != "" {
		last, err2 = strconv.ParseInt(strings.TrimSpace(b), 10, 64)
	}
	if !ok || err1 != nil || err2 != nil || first < 0 || (last >= 0 && last < first) {
		return sectorRange{}, invalid("blocks %q: want FIRST-LAST or FIRST- (512-byte sectors, FIRST <= LAST)", s)
	}
	return sectorRange{first, last}, nil
}

// EIO maps the target's sectors of the export device to the device-mapper
// `error` target: the server's reads and writes of them fail with EIO,
// which the client gets as NFS4ERR_IO (a write at its COMMIT: msync/fsync
// EIO; a read of a page it has not cached: EIO, SIGBUS for a mapping).
// Everything else stays mapped linear to the loop device. For a file,
// its holes are allocated first (`fallocate --keep-size`, unwritten
// extents: they still read as zeros) so that writes into them land on
// sectors that fail, then its extents are read (`filefrag -e -b512`), and
// afterwards the server's page cache of the file is dropped (`dd
// iflag=nocache count=0`; dirty pages stay) so its next read reaches the
// device. The client's cache is the client's: drop it there (a scenario's
// restart-target with drop_cache). Equivalent to:
//
//	fallocate -n -o 0 -l SIZE FILE; sync FILE; filefrag -e -b512 FILE
//	dmsetup suspend --noudevsync --nolockfs nfslab-NAME-export
//	dmsetup load --noudevsync nfslab-NAME-export STATE/export.table   # linear and error lines
//	dmsetup resume --noudevsync nfslab-NAME-export
//	dd if=FILE iflag=nocache count=0 status=none
func (s *NetnsServer) EIO(ctx context.Context, t FaultTarget) error {
	if err := t.Validate(FaultEIO); err != nil {
		return err
	}
	loop, size, err := s.blockExport(ctx)
	if err != nil {
		return err
	}
	var bad []sectorRange
	file := ""
	switch {
	case t.Path != "":
		if file, err = t.resolve(s.cfg.ExportDir); err != nil {
			return err
		}
		exts, err := s.fileExtents(ctx, file)
		if err != nil {
			return err
		}
		r := sectorRange{0, -1}
		if t.Blocks != "" {
			r, _ = parseBlocks(t.Blocks)
		}
		if bad = deviceRanges(exts, r); len(bad) == 0 {
			return invalid("blocks %q lie beyond the end of %s", t.Blocks, t.Path)
		}
	default:
		r, _ := parseBlocks(t.Blocks)
		if r.last < 0 {
			r.last = size - 1
		}
		if r.first >= size || r.last >= size {
			return invalid("blocks %q: the export device has %d sectors (0-%d)", t.Blocks, size, size-1)
		}
		bad = []sectorRange{r}
	}
	if err := s.loadTable(ctx, eioTable(loop, size, bad)); err != nil {
		return err
	}
	if file != "" {
		if _, err := s.host.Run(ctx, "dd", "if="+file, "iflag=nocache", "count=0", "status=none"); err != nil {
			return fmt.Errorf("dropping the server's page cache of %s: %w", file, err)
		}
	}
	return nil
}

// EIOOff maps the whole export device linear to its loop device again;
// done when it is so already, and when there is no such device.
func (s *NetnsServer) EIOOff(ctx context.Context) error {
	if !s.host.Exists(s.cfg.image()) {
		return nil // no block export: nothing can fail
	}
	loop, size, err := s.blockExport(ctx)
	if err != nil {
		return err
	}
	return s.loadTable(ctx, linearTable(loop, size)+"\n")
}

// blockExport finds the export's loop device and its size in sectors, or
// says why FaultEIO cannot work. Equivalent to: `losetup -l -n -O NAME
// -j STATE/export.img; blockdev --getsz /dev/loopN`.
func (s *NetnsServer) blockExport(ctx context.Context) (loop string, sectors int64, err error) {
	noDev := fmt.Errorf("%w: eio needs the export on nfslab's block device %s (start the server with an export size and export filesystem ext4: `nfslab nfs-server start --export-size 256MB --export-fs ext4`)",
		ErrInvalid, s.cfg.dmDev())
	if !s.host.Exists(s.cfg.image()) {
		return "", 0, noDev
	}
	loops, err := s.loopsOf(ctx)
	if err != nil {
		return "", 0, err
	}
	if len(loops) != 1 {
		return "", 0, fmt.Errorf("%w (loop devices of %s: %q)", noDev, s.cfg.image(), loops)
	}
	out, err := s.host.Run(ctx, "blockdev", "--getsz", loops[0])
	if err != nil {
		return "", 0, fmt.Errorf("reading the size of %s: %w", loops[0], err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		return "", 0, fmt.Errorf("reading the size of %s: blockdev printed %q", loops[0], out)
	}
	return loops[0], n, nil
}

// dmsetupTimeout bounds each dmsetup call of a table swap.
const dmsetupTimeout = 30 * time.Second

// loadTable swaps the dm device's table. The device is resumed even when
// the load fails: it is never left suspended (I/O would hang).
func (s *NetnsServer) loadTable(ctx context.Context, table string) error {
	name, file := s.cfg.dmName(), s.cfg.eioTable()
	if err := s.host.CreateFile(file); err != nil {
		return fmt.Errorf("creating %s: %w", file, err)
	}
	if err := s.host.WriteFile(file, []byte(table)); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	// --nolockfs: no filesystem freeze (it would sync dirty pages first and
	// wait for nfsd's writers); the swap waits for in-flight I/O only.
	// --noudevsync: dmsetup would otherwise wait for udev to confirm the
	// resume's event, which never came in the lab VM (no systemd there:
	// the apply never returned). Each call is bounded all the same.
	bounded := func(ctx context.Context, args ...string) error {
		cctx, cancel := context.WithTimeout(ctx, dmsetupTimeout)
		defer cancel()
		_, err := s.host.Run(cctx, "dmsetup", args...)
		return err
	}
	if err := bounded(ctx, "suspend", "--noudevsync", "--nolockfs", name); err != nil {
		return fmt.Errorf("suspending %s: %w", name, err)
	}
	lerr := bounded(ctx, "load", "--noudevsync", name, file)
	if err := bounded(context.WithoutCancel(ctx), "resume", "--noudevsync", name); err != nil {
		return fmt.Errorf("resuming %s (load: %v): %w", name, lerr, err)
	}
	if lerr != nil {
		return fmt.Errorf("loading the table of %s: %w", name, lerr)
	}
	return nil
}

// fileExtents allocates file's holes and returns its extents.
func (s *NetnsServer) fileExtents(ctx context.Context, file string) ([]extent, error) {
	out, err := s.host.Run(ctx, "stat", "-c", "%s:%F", file)
	if err != nil {
		if notFound(err) {
			return nil, invalid("eio path %s: no such file", file)
		}
		return nil, fmt.Errorf("reading the size of %s: %w", file, err)
	}
	sz, kind, _ := strings.Cut(strings.TrimSpace(string(out)), ":")
	size, err := strconv.ParseInt(sz, 10, 64)
	if err != nil || !strings.HasPrefix(kind, "regular") {
		return nil, invalid("eio path %s is not a regular file (%s)", file, strings.TrimSpace(string(out)))
	}
	if size == 0 {
		return nil, invalid("eio path %s is empty: it has no sectors to fail", file)
	}
	steps := [][]string{
		{"fallocate", "-n", "-o", "0", "-l", strconv.FormatInt(size, 10), file},
		{"sync", file},
	}
	for _, st := range steps {
		if _, err := s.host.Run(ctx, st[0], st[1:]...); err != nil {
			return nil, fmt.Errorf("preparing %s for eio (%s): %w", file, st[0], err)
		}
	}
	out, err = s.host.Run(ctx, "filefrag", "-e", "-b512", file)
	if err != nil {
		return nil, fmt.Errorf("reading the extents of %s: %w", file, err)
	}
	ext, err := parseFilefrag(string(out))
	if err != nil {
		return nil, fmt.Errorf("reading the extents of %s: %w", file, err)
	}
	if len(ext) == 0 {
		return nil, fmt.Errorf("%s has no extents on the device after fallocate", file)
	}
	return ext, nil
}

// extent is a file extent: the file's sectors [first, last] lie at the
// device's sectors [phys, phys+last-first].
type extent struct {
	sectorRange
	phys int64
}

// parseFilefrag reads `filefrag -e -b512` output:
//
//	ext:     logical_offset:        physical_offset: length:   expected: flags:
//	  0:        0..      79:   26481584..  26481663:     80:             unwritten
func parseFilefrag(out string) ([]extent, error) {
	var exts []extent
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimSpace(f[0])); err != nil {
			continue
		}
		lf, ll, ok1 := dotted(f[1])
		pf, _, ok2 := dotted(f[2])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("filefrag line %q", line)
		}
		if flags := f[len(f)-1]; strings.Contains(flags, "unknown_loc") || strings.Contains(flags, "delalloc") || strings.Contains(flags, "inline") {
			return nil, fmt.Errorf("extent %q is not on the device yet", strings.TrimSpace(line))
		}
		exts = append(exts, extent{sectorRange{lf, ll}, pf})
	}
	return exts, nil
}

// deviceRanges returns the device sectors of the file sectors r (last < 0:
// to the end) in exts.
func deviceRanges(exts []extent, r sectorRange) []sectorRange {
	var out []sectorRange
	for _, e := range exts {
		lo, hi := max(e.first, r.first), e.last
		if r.last >= 0 {
			hi = min(hi, r.last)
		}
		if hi < lo {
			continue
		}
		out = append(out, sectorRange{e.phys + lo - e.first, e.phys + hi - e.first})
	}
	return out
}

func dotted(s string) (a, b int64, ok bool) {
	x, y, found := strings.Cut(s, "..")
	a, err1 := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
	b, err2 := strconv.ParseInt(strings.TrimSpace(y), 10, 64)
	return a, b, found && err1 == nil && err2 == nil && b >= a
}

// eioTable is the device's table: error over bad (device sectors, any
// order, may overlap or touch: merged), linear to loop elsewhere.
func eioTable(loop string, size int64, bad []sectorRange) string {
	bad = slices.Clone(bad)
	slices.SortFunc(bad, func(a, b sectorRange) int { return int(min(max(a.first-b.first, -1), 1)) })
	var merged []sectorRange
	for _, r := range bad {
		r.last = min(r.last, size-1)
		switch {
		case r.last < r.first:
		case len(merged) > 0 && r.first <= merged[len(merged)-1].last+1:
			merged[len(merged)-1].last = max(merged[len(merged)-1].last, r.last)
		default:
			merged = append(merged, r)
		}
	}
	var b strings.Builder
	line := func(start, n int64, target string) {
		if n > 0 {
			fmt.Fprintf(&b, "%d %d %s\n", start, n, target)
		}
	}
	pos := int64(0)
	for _, r := range merged {
		line(pos, r.first-pos, "linear "+loop+" "+strconv.FormatInt(pos, 10))
		line(r.first, r.last-r.first+1, "error")
		pos = r.last + 1
	}
	line(pos, size-pos, "linear "+loop+" "+strconv.FormatInt(pos, 10))
	return b.String()
}
