package netnsdo

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
)

func inode(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(statIno(fi), 10), nil
}

func TestDoEntersAndLeaves(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip")
	name := "nfslt-nsdo-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	ctx := context.Background()
	if err := cmdrun.Run(ctx, "ip", "netns", "add", name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmdrun.Run(context.Background(), "ip", "netns", "del", name) })
	want, err := inode("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	host, err := inode("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := Do(name, func() error {
		var err error
		got, err = inode("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("inside Do the thread's namespace is %s, want %s", got, want)
	}
	if after, _ := inode("/proc/self/ns/net"); after != host {
		t.Fatalf("process namespace changed from %s to %s", host, after)
	}
	if err := Do("nfslt-does-not-exist", func() error { return nil }); err == nil {
		t.Fatal("Do in a missing namespace succeeded")
	}
}
