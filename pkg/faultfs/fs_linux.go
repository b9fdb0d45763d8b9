package faultfs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/pkg/clock"
)

// Options tune the mount. The cache options decide which faults a program
// sees: see docs/faultfs.md.
type Options struct {
	// KeepCache sets FOPEN_KEEP_CACHE on open: the kernel keeps the file's
	// page cache across opens, so data read or written before stays
	// readable without a FUSE READ, and read faults only bite on pages that
	// are not cached. Off (the default), every open drops the inode's page
	// cache, so a freshly opened file reads through FUSE.
	KeepCache bool
	// DirectIO sets FOPEN_DIRECT_IO: no page cache at all, every read and
	// write is a FUSE request, but shared writable mmap fails (a JVM's
	// FileChannel.map() throws), so journal workloads cannot run.
	DirectIO bool
	// Writeback enables the kernel's writeback cache (FUSE_WRITEBACK_CACHE):
	// write(2) returns after copying into the page cache and WRITE requests
	// come later, from writeback. Mapped writes always go through writeback.
	Writeback bool
	// EntryTimeout and AttrTimeout are how long the kernel caches lookups
	// and attributes. Zero (the default) caches nothing, so every lookup and
	// getattr reaches the fault rules.
	EntryTimeout, AttrTimeout time.Duration
	// Name is the filesystem name shown in /proc/self/mountinfo.
	Name string
	// Clock and Rand drive latencies and probabilities; nil means real.
	Clock clock.Clock
	Rand  func() float64
	// Logger receives mount events; nil discards them.
	Logger *slog.Logger
	// Debug logs every FUSE request (very verbose).
	Debug bool
}

// FS is a mounted fault filesystem.
type FS struct {
	*Engine
	backing, mountpoint string
	opts                Options
	server              *fuse.Server
	root                *node
	log                 *slog.Logger
	dev                 uint64

	unmountOnce sync.Once
	unmountErr  error
}

// Mount mounts a fault filesystem at mountpoint that passes every operation
// through to the directory backing, unless a rule says otherwise.
//
// Equivalent to a loopback FUSE mount ("fuse.nfslab-faultfs") without
// kernel passthrough.
func Mount(backing, mountpoint string, opts Options) (*FS, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("resolving backing directory %q: %w", backing, err)
	}
	mountpoint, err = filepath.Abs(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("resolving mountpoint %q: %w", mountpoint, err)
	}
	if opts.DirectIO && opts.KeepCache {
		return nil, fmt.Errorf("%w: keep-cache and direct-io exclude each other", ErrInvalid)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("backing directory %q: %w", backing, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, fmt.Errorf("backing %q is not a directory", backing)
	}
	if opts.Name == "" {
		opts.Name = "nfslab-faultfs"
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	f := &FS{
		Engine:     NewEngine(opts.Clock, opts.Rand),
		backing:    backing,
		mountpoint: mountpoint,
		opts:       opts,
		log:        lg,
	}
	lroot := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	lroot.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, fs: f}
	}
	f.root = &node{LoopbackNode: fs.LoopbackNode{RootData: lroot}, fs: f}
	lroot.RootNode = f.root

	entry, attr := opts.EntryTimeout, opts.AttrTimeout
	neg := time.Duration(0)
	mo := fuse.MountOptions{
		FsName:      backing,
		Name:        opts.Name,
		DirectMount: true, // we run as root; fusermount is the fallback
		Debug:       opts.Debug,
		// Kernel passthrough would send reads and writes straight to the
		// backing file, past every fault.
		DisabledCapabilities: fuse.CAP_PASSTHROUGH,
		MaxReadAhead:         128 << 10,
	}
	if opts.Writeback {
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	if !opts.Debug {
		mo.Logger = log.New(discard{}, "", 0)
	}
	server, err := mountNoInherit(mountpoint, f.root, &fs.Options{
		MountOptions:    mo,
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &neg,
	})
	if err != nil {
		return nil, fmt.Errorf("mounting faultfs %s on %s: %w", backing, mountpoint, err)
	}
	f.server = server
	var mst syscall.Stat_t
	if err := syscall.Stat(mountpoint, &mst); err == nil {
		f.dev = mst.Dev
	}
	lg.Info("faultfs mounted", "backing", backing, "mountpoint", mountpoint,
		"keep_cache", opts.KeepCache, "direct_io", opts.DirectIO, "writeback", opts.Writeback)
	return f, nil
}

// mountNoInherit is fs.Mount with a /dev/fuse descriptor no child
// inherits. go-fuse's direct mount opens /dev/fuse without O_CLOEXEC, so
// a process started later (the JVM under test) kept the FUSE connection
// open after nfslab died: the mount hung instead of failing with ENOTCONN,
// and a killed JVM stayed stuck in the kernel. The open and the marking
// happen under syscall.ForkLock (read), which every fork takes for
// writing, so no child is started in between. With the lock held the
// mount must not fork: the direct mount is strict there, and only when it
// fails does the fusermount fallback (which marks its descriptor itself)
// run, outside the lock.
func mountNoInherit(dir string, root fs.InodeEmbedder, opts *fs.Options) (*fuse.Server, error) {
	strict := *opts
	strict.DirectMount, strict.DirectMountStrict = true, true
	syscall.ForkLock.RLock()
	server, err := fuse.NewServer(fs.NewNodeFS(root, &strict), dir, &strict.MountOptions)
	if err == nil {
		err = closeFuseOnExec("/proc/self/fd")
	}
	syscall.ForkLock.RUnlock()
	if server == nil && !opts.DirectMountStrict {
		server, err = fuse.NewServer(fs.NewNodeFS(root, opts), dir, &opts.MountOptions)
		if err == nil {
			err = closeFuseOnExec("/proc/self/fd")
		}
	}
	if err != nil {
		if server != nil {
			_ = server.Unmount()
		}
		return nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		_ = server.Unmount()
		return nil, err
	}
	return server, nil
}

// closeFuseOnExec sets FD_CLOEXEC on every descriptor of this process
// that is open on /dev/fuse (fdDir lists them as symlinks).
func closeFuseOnExec(fdDir string) error {
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return fmt.Errorf("listing open descriptors: %w", err)
	}
	for _, e := range ents {
		if t, err := os.Readlink(filepath.Join(fdDir, e.Name())); err != nil || t != "/dev/fuse" {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			continue // closed since the listing
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, fl|unix.FD_CLOEXEC); err != nil {
			return fmt.Errorf("marking /dev/fuse descriptor %d close-on-exec: %w", fd, err)
		}
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Mountpoint returns the absolute mount directory.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Backing returns the absolute backing directory.
func (f *FS) Backing() string { return f.backing }

// Options returns the options the filesystem was mounted with.
func (f *FS) Options() Options { return f.opts }

// Unmount releases operations blocked in latencies (they fail with EIO),
// then unmounts. If the mount is busy (a process holds files open or
// mapped) or ctx ends first, it detaches the mount lazily (MNT_DETACH), so
// the path is free at once; it returns an error if the FUSE connection
// still has users when ctx ends. Safe to call more than once.
func (f *FS) Unmount(ctx context.Context) error {
	f.unmountOnce.Do(func() { f.unmountErr = f.unmount(ctx) })
	return f.unmountErr
}

func (f *FS) unmount(ctx context.Context) error {
	f.Engine.Close()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- f.server.Unmount() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		f.log.Info("faultfs unmounted", "mountpoint", f.mountpoint, "took", time.Since(start))
		return nil
	}
	f.log.Warn("faultfs unmount failed; detaching lazily", "mountpoint", f.mountpoint, "err", err)
	if derr := unix.Unmount(f.mountpoint, unix.MNT_DETACH); derr != nil && !errors.Is(derr, unix.EINVAL) {
		return fmt.Errorf("unmounting %s: %v; lazy unmount: %w", f.mountpoint, err, derr)
	}
	f.abortConnection()
	waited := make(chan struct{})
	go func() { f.server.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("unmounting %s: detached, but the FUSE connection still has users: %w", f.mountpoint, ctx.Err())
	}
}

// abortConnection aborts the FUSE connection through fusectl when it is
// mounted (/sys/fs/fuse/connections), so a detached mount that processes
// still use stops at once. nfslab does not mount fusectl itself.
func (f *FS) abortConnection() {
	if f.dev == 0 || unix.Major(f.dev) != 0 {
		return
	}
	p := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(f.dev))
	if err := os.WriteFile(p, []byte("1"), 0); err == nil {
		f.log.Info("faultfs connection aborted", "path", p)
	}
}

// DropCache drops the kernel's cached pages of rel (a path relative to the
// mount root) so the next access, including a page fault on a mapping,
// reaches FUSE and its rules. It sends FUSE_NOTIFY_INVAL_INODE for the
// whole file, which also unmaps the pages from processes that map it, and
// drops the backing file's own pages with posix_fadvise(DONTNEED) so the
// passthrough read really goes to the disk. Dirty pages are written back
// first (through FUSE, so a write rule applies).
func (f *FS) DropCache(rel string) error {
	rel = strings.Trim(filepath.ToSlash(filepath.Clean("/"+rel)), "/")
	in := f.root.EmbeddedInode()
	if rel != "" {
		for _, name := range strings.Split(rel, "/") {
			if in = in.GetChild(name); in == nil {
				break
			}
		}
	}
	if in != nil {
		// ENOENT means the kernel does not know the inode: nothing cached.
		if errno := in.NotifyContent(0, 0); errno != 0 && errno != syscall.ENOENT {
			return fmt.Errorf("invalidating kernel cache of %s: %w", rel, errno)
		}
	}
	bp := filepath.Join(f.backing, filepath.FromSlash(rel))
	fd, err := unix.Open(bp, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("dropping backing cache of %s: %w", bp, err)
	}
	defer unix.Close(fd)
	if err := unix.Fdatasync(fd); err != nil {
		return fmt.Errorf("dropping backing cache of %s: fdatasync: %w", bp, err)
	}
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("dropping backing cache of %s: fadvise: %w", bp, err)
	}
	return nil
}

// DropCacheGlob drops the cache of every regular file under the mount whose
// relative path matches glob (same syntax as Rule.PathGlob) and returns
// their paths.
func (f *FS) DropCacheGlob(glob string) ([]string, error) {
	var done []string
	err := filepath.WalkDir(f.backing, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, rerr := filepath.Rel(f.backing, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if !matchPath(glob, rel) {
			return nil
		}
		if err := f.DropCache(rel); err != nil {
			return err
		}
		done = append(done, rel)
		return nil
	})
	return done, err
}

// node is a loopback node that consults the rules first.
type node struct {
	fs.LoopbackNode
	fs *FS
}

func (n *node) rel(name string) string {
	p := n.Path(n.fs.root.EmbeddedInode())
	if name == "" {
		return p
	}
	if p == "" {
		return name
	}
	return p + "/" + name
}

func (n *node) check(ctx context.Context, op Op, rel string) syscall.Errno {
	return n.fs.Engine.Check(ctx, op, rel, 0, 0)
}

var (
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeReaddirer      = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
)

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.check(ctx, OpLookup, n.rel(name)); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Lookup(ctx, name, out)
}

func (n *node) openFlags() uint32 {
	var fl uint32
	if n.fs.opts.KeepCache {
		fl |= fuse.FOPEN_KEEP_CACHE
	}
	if n.fs.opts.DirectIO {
		fl |= fuse.FOPEN_DIRECT_IO
	}
	return fl
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	rel := n.rel("")
	if e := n.check(ctx, OpOpen, rel); e != 0 {
		return nil, 0, e
	}
	fh, fl, e := n.LoopbackNode.Open(ctx, flags)
	if e != 0 {
		return nil, 0, e
	}
	return n.wrap(fh, rel), fl | n.openFlags(), 0
}

func (n *node) wrap(fh fs.FileHandle, rel string) fs.FileHandle {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return fh
	}
	return &file{lf: lf, node: n, relAtOpen: rel}
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	rel := n.rel(name)
	if e := n.check(ctx, OpCreate, rel); e != 0 {
		return nil, nil, 0, e
	}
	in, fh, fl, e := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if e != 0 {
		return nil, nil, 0, e
	}
	if cn, ok := in.Operations().(*node); ok {
		fh = cn.wrap(fh, rel)
	}
	return in, fh, fl | n.openFlags(), 0
}

func (n *node) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	rel := n.rel("")
	if e := n.check(ctx, OpCreate, rel); e != 0 {
		return nil, nil, 0, e
	}
	in, fh, fl, e := n.LoopbackNode.Tmpfile(ctx, flags, mode, out)
	if e != 0 {
		return nil, nil, 0, e
	}
	if cn, ok := in.Operations().(*node); ok {
		fh = cn.wrap(fh, rel)
	}
	return in, fh, fl | n.openFlags(), 0
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if e := n.check(ctx, OpGetattr, n.rel("")); e != 0 {
		return e
	}
	if ff, ok := f.(*file); ok {
		return ff.lf.Getattr(ctx, out)
	}
	return n.LoopbackNode.Getattr(ctx, nil, out)
}

func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if e := n.check(ctx, OpGetattr, n.rel("")); e != 0 {
		return e
	}
	if ff, ok := f.(*file); ok {
		return ff.lf.Statx(ctx, flags, mask, out)
	}
	return n.LoopbackNode.Statx(ctx, nil, flags, mask, out)
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := n.check(ctx, OpSetattr, n.rel("")); e != 0 {
		return e
	}
	if ff, ok := f.(*file); ok {
		f = ff.lf
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if e := n.check(ctx, OpUnlink, n.rel(name)); e != 0 {
		return e
	}
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if e := n.check(ctx, OpUnlink, n.rel(name)); e != 0 {
		return e
	}
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := n.check(ctx, OpRename, n.rel(name)); e != 0 {
		return e
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.check(ctx, OpMkdir, n.rel(name)); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if e := n.check(ctx, OpReaddir, n.rel("")); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Readdir(ctx)
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if e := n.check(ctx, OpReaddir, n.rel("")); e != 0 {
		return nil, 0, e
	}
	return n.LoopbackNode.OpendirHandle(ctx, flags)
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if e := n.check(ctx, OpStatfs, n.rel("")); e != 0 {
		return e
	}
	return n.LoopbackNode.Statfs(ctx, out)
}

// file is an open file. It deliberately has no PassthroughFd method: with
// kernel passthrough the kernel would read and write the backing file
// itself and no rule would ever see the I/O.
type file struct {
	lf        *fs.LoopbackFile
	node      *node
	relAtOpen string
}

var (
	_ fs.FileReader    = (*file)(nil)
	_ fs.FileWriter    = (*file)(nil)
	_ fs.FileFsyncer   = (*file)(nil)
	_ fs.FileFlusher   = (*file)(nil)
	_ fs.FileReleaser  = (*file)(nil)
	_ fs.FileGetattrer = (*file)(nil)
	_ fs.FileSetattrer = (*file)(nil)
	_ fs.FileLseeker   = (*file)(nil)
	_ fs.FileAllocater = (*file)(nil)
	_ fs.FileGetlker   = (*file)(nil)
	_ fs.FileSetlker   = (*file)(nil)
	_ fs.FileSetlkwer  = (*file)(nil)
)

// rel is the file's current path (it may have been renamed since open).
func (f *file) rel() string {
	if p := f.node.rel(""); !strings.Contains(p, ".go-fuse.") {
		return p
	}
	return f.relAtOpen // unlinked while open
}

func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if e := f.node.fs.Engine.Check(ctx, OpRead, f.rel(), off, int64(len(buf))); e != 0 {
		return nil, e
	}
	return f.lf.Read(ctx, buf, off)
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if e := f.node.fs.Engine.Check(ctx, OpWrite, f.rel(), off, int64(len(data))); e != 0 {
		return 0, e
	}
	return f.lf.Write(ctx, data, off)
}

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if e := f.node.fs.Engine.Check(ctx, OpFsync, f.rel(), 0, 0); e != 0 {
		return e
	}
	return f.lf.Fsync(ctx, flags)
}

func (f *file) Flush(ctx context.Context) syscall.Errno {
	if e := f.node.fs.Engine.Check(ctx, OpFlush, f.rel(), 0, 0); e != 0 {
		return e
	}
	return f.lf.Flush(ctx)
}

func (f *file) Release(ctx context.Context) syscall.Errno { return f.lf.Release(ctx) }

func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	if e := f.node.fs.Engine.Check(ctx, OpGetattr, f.rel(), 0, 0); e != 0 {
		return e
	}
	return f.lf.Getattr(ctx, out)
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := f.node.fs.Engine.Check(ctx, OpSetattr, f.rel(), 0, 0); e != 0 {
		return e
	}
	return f.lf.Setattr(ctx, in, out)
}

func (f *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.lf.Lseek(ctx, off, whence)
}

func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if e := f.node.fs.Engine.Check(ctx, OpWrite, f.rel(), int64(off), int64(size)); e != 0 {
		return e
	}
	return f.lf.Allocate(ctx, off, size, mode)
}

func (f *file) Getlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	return f.lf.Getlk(ctx, owner, lk, flags, out)
}

func (f *file) Setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return f.lf.Setlk(ctx, owner, lk, flags)
}

func (f *file) Setlkw(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return f.lf.Setlkw(ctx, owner, lk, flags)
}

func (f *FS) info() Info {
	return Info{Backing: f.backing, Mountpoint: f.mountpoint, KeepCache: f.opts.KeepCache,
		DirectIO: f.opts.DirectIO, Writeback: f.opts.Writeback}
}
