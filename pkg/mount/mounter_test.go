package mount

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
)

const mnt = DefaultRoot + "/zeebe"

func TestFakeFailsLikeTheKernel(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	if err := f.Mount(ctx, "srv:/", mnt, "nfs4", []string{"soft"}); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("mount on missing dir: %v, want ENOENT", err)
	}
	f.AddDir(mnt)
	if _, err := f.Unmount(ctx, mnt, UnmountOptions{}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("unmount of unmounted dir: %v, want EINVAL", err)
	}
	if _, err := f.Unmount(ctx, "/nonexistent", UnmountOptions{}); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("unmount of missing path: %v, want ENOENT", err)
	}
	if err := f.Mount(ctx, "srv:/", mnt, "nfs4", []string{"soft"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.IsMounted(mnt); !ok || err != nil {
		t.Fatalf("IsMounted = %v, %v", ok, err)
	}
	if err := f.Mount(ctx, "x", "relative", "nfs4", nil); err == nil {
		t.Fatal("relative target accepted")
	}
	// Busy: plain and force get EBUSY, detach works and says so.
	f.SetBusy(mnt, true)
	res, err := f.Unmount(ctx, mnt, UnmountOptions{Timeout: time.Second})
	if err != nil || res.Method != StepDetach || !res.Detached || len(res.Attempts) != 3 {
		t.Fatalf("busy unmount = %+v, %v; want detached after 3 attempts", res, err)
	}
	for _, a := range res.Attempts[:2] {
		if !errors.Is(a.Err, syscall.EBUSY) {
			t.Errorf("attempt %s: %v, want EBUSY", a.Step, a.Err)
		}
	}
	if !strings.Contains(res.String(), "left lazily detached") {
		t.Errorf("result text %q does not report the detach", res)
	}
	want := []string{
		"mount srv:/ /run/nfslab/mnt/zeebe nfs4 soft",
		"umount2 /run/nfslab/mnt/zeebe 0",
		"umount2 /nonexistent 0",
		"mount srv:/ /run/nfslab/mnt/zeebe nfs4 soft",
		"umount2 /run/nfslab/mnt/zeebe 0",
		"umount2 /run/nfslab/mnt/zeebe MNT_FORCE",
		"umount2 /run/nfslab/mnt/zeebe MNT_DETACH",
	}
	if got := f.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ok, _ := f.IsMounted(mnt); ok {
		t.Fatal("still mounted after detach")
	}
}

// runWithFakeClock runs fn and advances clk whenever someone waits on it,
// until fn returns. Bounded: it fails the test after 1000 rounds.
func runWithFakeClock(t *testing.T, clk *clock.Fake, step time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	for i := 0; i < 1000; i++ {
		select {
		case <-done:
			return
		case <-time.After(time.Millisecond):
			if clk.Waiters() > 0 {
				clk.Advance(step)
			}
		}
	}
	t.Fatal("call did not return after 1000 clock steps")
}

func TestUnmountOfHungMountReturnsWithinTimeout(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	f := NewFakeWithClock(clk)
	f.AddDir(mnt)
	ctx := context.Background()
	if err := f.Mount(ctx, "10.213.0.2:/", mnt, "nfs4", nil); err != nil {
		t.Fatal(err)
	}
	release := f.Hang(mnt)
	defer release()
	start := clk.Now()
	var res UnmountResult
	var err error
	runWithFakeClock(t, clk, time.Second, func() {
		res, err = f.Unmount(ctx, mnt, UnmountOptions{Timeout: 10 * time.Second})
	})
	if err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if took := clk.Now().Sub(start); took > 10*time.Second {
		t.Errorf("Unmount took %s of fake time, want <= 10s", took)
	}
	if !res.Hung || !res.Detached || res.Method != StepDetach {
		t.Errorf("result %+v: want hung attempts and a lazy detach", res)
	}
	for _, a := range res.Attempts[:2] {
		if !errors.Is(a.Err, ErrTimeout) {
			t.Errorf("attempt %s: %v, want ErrTimeout", a.Step, a.Err)
		}
	}
	if ok, _ := f.IsMounted(mnt); ok {
		t.Error("still in the mount table after detach")
	}
}

func TestUnmountHungRealClockBounded(t *testing.T) {
	f := NewFake()
	f.AddDir(mnt)
	ctx := context.Background()
	if err := f.Mount(ctx, "10.213.0.2:/", mnt, "nfs4", nil); err != nil {
		t.Fatal(err)
	}
	release := f.Hang(mnt)
	defer release()
	start := time.Now()
	res, err := f.Unmount(ctx, mnt, UnmountOptions{Timeout: 300 * time.Millisecond})
	if took := time.Since(start); took > time.Second {
		t.Errorf("Unmount took %s with a 300ms timeout", took)
	}
	if err != nil || !res.Detached {
		t.Fatalf("Unmount = %+v, %v", res, err)
	}
}

func TestUnmountContextCancelStops(t *testing.T) {
	f := NewFake()
	f.AddDir(mnt)
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.Mount(ctx, "s:/", mnt, "nfs4", nil); err != nil {
		t.Fatal(err)
	}
	release := f.Hang(mnt)
	defer release()
	cancel()
	res, err := f.Unmount(ctx, mnt, UnmountOptions{Timeout: time.Hour})
	if err == nil || len(res.Attempts) != 1 {
		t.Fatalf("cancelled Unmount = %+v, %v; want an error after one attempt", res, err)
	}
}

func TestSweepOnlyTouchesOwnDir(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	outside := []string{"/run/nfslab/mntx", "/mnt/data", "/run/nfslab"}
	inside := []string{mnt, mnt + "/nested", DefaultRoot + "/other dir"}
	f.AddDir(append(outside, inside...)...)
	for _, p := range append(outside, inside...) {
		if err := f.Mount(ctx, "s:/", p, "nfs4", nil); err != nil {
			t.Fatal(err)
		}
	}
	// Stacked mount on one of ours.
	if err := f.Mount(ctx, "s2:/", mnt, "nfs4", nil); err != nil {
		t.Fatal(err)
	}
	f.SetBusy(DefaultRoot+"/other dir", true)
	res, err := Sweep(ctx, f, DefaultRoot, UnmountOptions{Timeout: time.Second})
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if len(res) != 4 {
		t.Errorf("Sweep handled %d mounts, want 4", len(res))
	}
	if res[0].Mount.Path != mnt+"/nested" {
		t.Errorf("first unmounted %s, want the deepest", res[0].Mount.Path)
	}
	left, _ := f.List()
	var paths []string
	for _, mp := range left {
		paths = append(paths, mp.Path)
	}
	if !reflect.DeepEqual(paths, outside) {
		t.Errorf("after Sweep the table holds %q, want exactly %q", paths, outside)
	}
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "umount2 ") && !strings.HasPrefix(c, "umount2 "+DefaultRoot+"/") {
			t.Errorf("Sweep touched %q outside its root", c)
		}
	}
}

func TestTargetAndWithin(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"zeebe", DefaultRoot + "/zeebe", true},
		{DefaultRoot + "/a/b", DefaultRoot + "/a/b", true},
		{"../etc", "", false},
		{"/home/me/nfs", "", false},
		{DefaultRoot, "", false},
		{DefaultRoot + "x/y", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := Target(DefaultRoot, tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Target(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if !Within("/", "/x") || Within("/", "/") {
		t.Error("Within with root /")
	}
}

func TestPrepareTarget(t *testing.T) {
	root := t.TempDir()
	if err := PrepareTarget(root, filepath.Join(root, "a", "b")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(root, "a", "b")); err != nil || !st.IsDir() {
		t.Fatalf("not created: %v", err)
	}
	if err := PrepareTarget(root, "/tmp/elsewhere-nfslab"); err == nil {
		t.Fatal("PrepareTarget outside root accepted")
	}
}

func TestWithTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	start := time.Now()
	err := WithTimeout(context.Background(), 50*time.Millisecond, func() error { <-block; return nil })
	if !errors.Is(err, ErrTimeout) || time.Since(start) > time.Second {
		t.Fatalf("WithTimeout = %v after %s", err, time.Since(start))
	}
	boom := errors.New("boom")
	if err := WithTimeout(context.Background(), time.Second, func() error { return boom }); err != boom {
		t.Fatalf("WithTimeout passes errors through: got %v", err)
	}
}

type fakeResolver struct{}

func (fakeResolver) LookupAddr(_ context.Context, host string) (netip.Addr, error) {
	if host == "nfs.lab" {
		return netip.MustParseAddr("10.213.0.2"), nil
	}
	return netip.ParseAddr(host)
}
func (fakeResolver) SourceAddr(context.Context, netip.Addr) (netip.Addr, error) {
	return netip.MustParseAddr("10.213.0.1"), nil
}

func TestMountNFSResolvesAddresses(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	f.AddDir(mnt)
	o, _ := ParseNFSOptions(DefaultNFSOptions + ",nosuid")
	used, err := MountNFS(ctx, f, fakeResolver{}, "nfs.lab:/export", mnt, o)
	if err != nil {
		t.Fatal(err)
	}
	want := "mount nfs.lab:/export " + mnt + " nfs4 nosuid,vers=4.2,proto=tcp,port=2049,soft,timeo=10,retrans=2,addr=10.213.0.2,clientaddr=10.213.0.1"
	if got := f.Calls()[0]; got != want {
		t.Errorf("call = %q\nwant   %q", got, want)
	}
	if used.ClientAddr.String() != "10.213.0.1" {
		t.Errorf("used options %v", used)
	}
	v3, _ := ParseNFSOptions("vers=3,soft")
	f.AddDir(mnt + "3")
	if _, err := MountNFS(ctx, f, fakeResolver{}, "[fd00::2]:/x", mnt+"3", v3); err != nil {
		t.Fatal(err)
	}
	if got := f.Calls()[1]; !strings.HasSuffix(got, " nfs vers=3,soft,addr=fd00::2") {
		t.Errorf("v3 call = %q, want fstype nfs, addr and no clientaddr", got)
	}
}

func TestSplitSource(t *testing.T) {
	for _, bad := range []string{"server", "/export", ":/x", "a b:/x", "host:export"} {
		if _, _, err := SplitSource(bad); err == nil {
			t.Errorf("SplitSource(%q) accepted", bad)
		}
	}
	h, e, err := SplitSource("192.168.24.110:/")
	if err != nil || h != "192.168.24.110" || e != "/" {
		t.Errorf("SplitSource = %q %q %v", h, e, err)
	}
}

func TestNetResolverLoopback(t *testing.T) {
	a, err := NetResolver{}.SourceAddr(context.Background(), netip.MustParseAddr("127.0.0.1"))
	if err != nil || !a.IsLoopback() {
		t.Fatalf("SourceAddr(127.0.0.1) = %v, %v", a, err)
	}
}
