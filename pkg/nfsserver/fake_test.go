package nfsserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// fakeHost records every side effect and emulates the few kernel objects
// whose existence the servers check (namespace and mount namespace files).
type fakeHost struct {
	mu       sync.Mutex
	runs     []string
	files    map[string]string // path -> content; presence means Exists
	fail     map[string]error  // command prefix -> error
	out      map[string]string // command prefix -> stdout
	missing  map[string]bool   // tools LookPath does not find
	bin      string            // where LookPath finds tools ("" is /usr/sbin)
	signals  []string
	dialErr  error
	dials    []string
	local    []netip.Addr
	writes   []string
	removed  []string
	writeErr error
	// script: command prefix -> answers given in turn (the last repeats),
	// before fail and out.
	script map[string][]scripted
}

type scripted struct {
	out string
	err error
}

func newFakeHost() *fakeHost {
	return &fakeHost{
		files: map[string]string{"/proc/filesystems": "nodev\tproc\nnodev\tnfsd\n"},
		fail:  map[string]error{}, out: map[string]string{}, missing: map[string]bool{},
	}
}

func notFoundErr(msg string) error { return fmt.Errorf("exit status 1: %s", msg) }

func match(m map[string]string, cmd string) (string, bool) {
	best := ""
	for k := range m {
		if strings.HasPrefix(cmd, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return "", false
	}
	return m[best], true
}

func (h *fakeHost) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cmd := strings.Join(append([]string{name}, args...), " ")
	h.runs = append(h.runs, cmd)
	for k, answers := range h.script {
		if strings.HasPrefix(cmd, k) && len(answers) > 0 {
			a := answers[0]
			if len(answers) > 1 {
				h.script[k] = answers[1:]
			}
			return []byte(a.out), a.err
		}
	}
	for k, err := range h.fail {
		if strings.HasPrefix(cmd, k) {
			return nil, err
		}
	}
	// Emulate the objects Stop looks for.
	switch {
	case name == "ip" && len(args) == 3 && args[0] == "netns" && args[1] == "add":
		h.files["/run/netns/"+args[2]] = ""
	case name == "ip" && len(args) == 3 && args[0] == "netns" && args[1] == "del":
		if _, ok := h.files["/run/netns/"+args[2]]; !ok {
			return nil, notFoundErr("Cannot remove namespace file: No such file or directory")
		}
		delete(h.files, "/run/netns/"+args[2])
	case name == "ip" && strings.Contains(cmd, "link del"):
		if _, ok := h.files["veth"]; !ok {
			return nil, notFoundErr(`Cannot find device "x"`)
		}
		delete(h.files, "veth")
	case name == "ip" && strings.Contains(cmd, "type veth"):
		h.files["veth"] = ""
	case name == "unshare":
		h.files[strings.TrimPrefix(args[0], "--mount=")] = ""
	case name == "umount":
		if _, ok := h.files[args[0]]; !ok {
			return nil, notFoundErr("umount: " + args[0] + ": not mounted.")
		}
		if strings.HasSuffix(args[0], "/mnt") {
			delete(h.files, args[0])
		}
	}
	if o, ok := match(h.out, cmd); ok {
		return []byte(o), nil
	}
	return nil, nil
}

func (h *fakeHost) LookPath(name string) (string, error) {
	if h.missing[name] {
		return "", exec.ErrNotFound
	}
	if h.bin != "" {
		return h.bin + "/" + name, nil
	}
	return "/usr/sbin/" + name, nil
}

func (h *fakeHost) ReadFile(p string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.files[p]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return []byte(c), nil
}

func (h *fakeHost) WriteFile(p string, b []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes = append(h.writes, p+"="+string(b))
	if h.writeErr != nil {
		return h.writeErr
	}
	h.files[p] = string(b)
	return nil
}

func (h *fakeHost) MkdirAll(p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[p] = ""
	return nil
}

func (h *fakeHost) Chmod(p string, mode os.FileMode) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runs = append(h.runs, fmt.Sprintf("(chmod %o %s)", mode, p))
	return nil
}

func (h *fakeHost) CreateFile(p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runs = append(h.runs, "(create "+p+")")
	return nil
}

func (h *fakeHost) RemoveAll(p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removed = append(h.removed, p)
	for k := range h.files {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(h.files, k)
		}
	}
	return nil
}

func (h *fakeHost) Exists(p string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.files[p]
	return ok
}

func (h *fakeHost) Signal(pid int, sig syscall.Signal) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.signals = append(h.signals, fmt.Sprintf("%d %s", pid, sig))
	delete(h.files, fmt.Sprintf("/proc/%d", pid)) // it exits at once
	return nil
}

func (h *fakeHost) DialTCP(_ context.Context, ap netip.AddrPort) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dials = append(h.dials, ap.String())
	return h.dialErr
}

func (h *fakeHost) LocalAddrs() ([]netip.Addr, error) { return h.local, nil }

var errRefused = errors.New("connect: connection refused")

func (h *fakeHost) dialsSnapshot() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.dials)
}
