package vm

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Snapshot is the guest state that nfslab may change: firewall rules,
// routes, mounts, network namespaces, links and user processes. The agent
// takes one before and after each step; anything new afterwards is a
// leftover and fails the step.
type Snapshot struct {
	Rules     []string // nfslab lines of iptables-save and ip6tables-save
	Routes    []string // ip -o route show table all (v4 and v6)
	Mounts    []string // "SOURCE MOUNTPOINT FSTYPE" from /proc/self/mounts
	Netns     []string
	Links     []string
	Processes []string // "PID COMM" of user-space processes
	// Devices are device-mapper devices ("dm NAME", dmsetup ls) and loop
	// devices ("loop NAME BACKING-FILE", losetup --list): an eio export's.
	Devices []string
	// Exports are the paths below nfsserver.DefaultExport: a server's
	// export directory, which a killed run's heal --all must remove too
	// (the container server's had no sweep before cleanup's exports step).
	Exports []string
	// Parents maps a listed PID to its parent's PID. A new process whose
	// parent was already running before the step is that service's own
	// worker (udevd's udev-worker after a veth appears), not nfslab's:
	// what nfslab leaks is a child of the step or an orphan of PID 1.
	Parents map[string]string
}

var counters = regexp.MustCompile(`^\[\d+:\d+\]\s*`)

// NfslabRules keeps the iptables-save lines that belong to nfslab (its
// chains and its comment tags), without packet counters. Table headers and
// the built-in chains' policies are not nfslab's and are left out, so a
// table that the kernel creates on first use is not a leftover.
func NfslabRules(save string) []string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		l = counters.ReplaceAllString(strings.TrimSpace(l), "")
		if strings.Contains(strings.ToLower(l), "nfslab") {
			out = append(out, l)
		}
	}
	return out
}

// MountLines reduces /proc/self/mounts to source, mount point and type.
func MountLines(mounts string) []string {
	var out []string
	for _, l := range strings.Split(mounts, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 {
			out = append(out, f[0]+" "+f[1]+" "+f[2])
		}
	}
	return out
}

// LinkNames extracts interface names from `ip -o link show`.
func LinkNames(out string) []string {
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			name := strings.TrimSuffix(f[1], ":")
			if i := strings.IndexByte(name, '@'); i >= 0 {
				name = name[:i]
			}
			names = append(names, name)
		}
	}
	return names
}

// NonEmptyLines splits command output into trimmed, non-empty lines.
func NonEmptyLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// Leftovers lists what after has and before had not, one line per object.
func Leftovers(before, after Snapshot) []string {
	var out []string
	add := func(kind string, b, a []string) {
		for _, x := range newLines(b, a) {
			out = append(out, kind+": "+x)
		}
	}
	add("iptables", before.Rules, after.Rules)
	add("route", before.Routes, after.Routes)
	add("mount", before.Mounts, after.Mounts)
	add("netns", before.Netns, after.Netns)
	add("link", before.Links, after.Links)
	add("process", before.Processes, newOwnProcesses(before, after))
	add("device", before.Devices, after.Devices)
	add("export", before.Exports, after.Exports)
	return out
}

// DeviceLines turns `dmsetup ls` and `losetup --list --noheadings --output
// NAME,BACK-FILE` into "dm NAME" and "loop NAME FILE" lines ("No devices
// found" and errors give none).
func DeviceLines(dmls, losetup string) []string {
	var out []string
	for _, l := range strings.Split(dmls, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && strings.HasPrefix(f[1], "(") {
			out = append(out, "dm "+f[0])
		}
	}
	for _, l := range strings.Split(losetup, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && strings.HasPrefix(f[0], "/dev/loop") {
			out = append(out, "loop "+f[0]+" "+f[1])
		}
	}
	return out
}

// newOwnProcesses leaves out of after's processes those whose parent is a
// process of before other than PID 1 (which before never lists).
func newOwnProcesses(before, after Snapshot) []string {
	old := make(map[string]bool, len(before.Processes))
	for _, p := range before.Processes {
		old[pidOf(p)] = true
	}
	var out []string
	for _, p := range after.Processes {
		if pid := pidOf(p); !old[pid] && old[after.Parents[pid]] {
			continue
		}
		out = append(out, p)
	}
	return out
}

func pidOf(line string) string {
	pid, _, _ := strings.Cut(line, " ")
	return pid
}

func newLines(before, after []string) []string {
	seen := make(map[string]int, len(before))
	for _, b := range before {
		seen[b]++
	}
	var out []string
	for _, a := range after {
		if seen[a] > 0 {
			seen[a]--
			continue
		}
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// String is a short summary for logs.
func (s Snapshot) String() string {
	return fmt.Sprintf("%d nfslab rules, %d routes, %d mounts, %d netns, %d links, %d processes, %d block devices, %d exports",
		len(s.Rules), len(s.Routes), len(s.Mounts), len(s.Netns), len(s.Links), len(s.Processes), len(s.Devices), len(s.Exports))
}
