package detect

import (
	"regexp"
	"strings"
)

// Built-in detector names. They are stable: scenarios refer to them.
const (
	MsyncIOException      = "msync-ioexception"
	RaftInactive          = "raft-inactive"
	OutOfDisk             = "out-of-disk"
	StreamProcessorPaused = "stream-processor-paused"
	JVMSigbus             = "jvm-sigbus"
	HsErrFile             = "hs-err-file"
	ReplayStart           = "replay-start"
	PartitionHealthy      = "partition-healthy"
	NoMessageHandler      = "no-message-handler"
	DeadlineExceeded      = "deadline-exceeded"
)

var (
	partitionIDRe = regexp.MustCompile(`partitionId=(\d+)`)
	partitionRe   = regexp.MustCompile(`\bPartition-(\d+)\b`)
	sigbusRe      = regexp.MustCompile(`SIGBUS \(0x7\) at pc=(0x[0-9a-fA-F]+), pid=(\d+), tid=(\d+)`)
	errnoRe       = regexp.MustCompile(`IOException: ([^:(]+) \(msync with parameter MS_SYNC failed\)`)
	replayRe      = regexp.MustCompile(`snapshot-position: (\d+), replay-mode: (\w+)`)
	diskRe        = regexp.MustCompile(`Current available (\d+) bytes\. Minimum needed (\d+) bytes`)
	handlerRe     = regexp.MustCompile(`no message handler for (command-api-\d+)`)
)

// partitionField sets "partition" from the log record (Zeebe's MDC
// "partitionId=1") or the message ("Partition-1 recovered").
func partitionField(ev []string, f map[string]string) {
	for _, re := range []*regexp.Regexp{partitionIDRe, partitionRe} {
		for _, l := range ev {
			if m := re.FindStringSubmatch(l); m != nil {
				f["partition"] = m[1]
				return
			}
		}
	}
}

func firstSubmatch(re *regexp.Regexp, ev []string, f map[string]string, names ...string) {
	for _, l := range ev {
		if m := re.FindStringSubmatch(l); m != nil {
			for i, n := range names {
				f[n] = m[i+1]
			}
			return
		}
	}
}

// bannerText strips the banner's "# " prefix.
func bannerText(l string) string {
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
}

// Builtins returns the built-in detectors for what the workshop saw.
func Builtins() []Detector {
	return []Detector{
		{
			Name:        MsyncIOException,
			Description: "flushing a mapped file failed: java.io.IOException (msync with parameter MS_SYNC failed), with its stack trace",
			Literals:    []string{"msync with parameter MS_SYNC failed"},
			Group:       GroupStack,
			fields: func(ev []string, f map[string]string) {
				firstSubmatch(errnoRe, ev, f, "error")
				partitionField(ev, f)
			},
		},
		{
			Name:        RaftInactive,
			Description: "a Raft partition went inactive (Transitioning to INACTIVE)",
			Literals:    []string{"Transitioning to INACTIVE"},
			fields:      partitionField,
		},
		{
			Name:        OutOfDisk,
			Description: "the disk space monitor saw no free space (Out of disk space)",
			Literals:    []string{"Out of disk space"},
			fields: func(ev []string, f map[string]string) {
				firstSubmatch(diskRe, ev, f, "available", "needed")
			},
		},
		{
			Name:        StreamProcessorPaused,
			Description: "the stream processor was paused (Pausing stream processor)",
			Literals:    []string{"Pausing stream processor"},
			fields:      partitionField,
		},
		{
			Name:        JVMSigbus,
			Description: "the JVM crashed on SIGBUS (fatal error banner, with the problematic frame)",
			Literals:    []string{"SIGBUS (0x7)"},
			Re:          regexp.MustCompile(`^\s*#\s+SIGBUS \(0x7\)`),
			Group:       GroupBanner,
			fields: func(ev []string, f map[string]string) {
				firstSubmatch(sigbusRe, ev, f, "pc", "pid", "tid")
				for i, l := range ev {
					t := bannerText(l)
					if t == "Problematic frame:" && i+1 < len(ev) {
						f["frame"] = bannerText(ev[i+1])
					}
					if strings.HasPrefix(t, "An error report file with more information is saved as:") && i+1 < len(ev) {
						f["hs_err"] = bannerText(ev[i+1])
					}
				}
			},
		},
		{
			Name:        HsErrFile,
			Description: "the JVM wrote a fatal error report (hs_err_pid*.log); the path is in field path",
			Literals:    []string{"An error report file with more information is saved as:"},
			Group:       GroupNext,
			Next:        1,
			fields: func(ev []string, f map[string]string) {
				for i, l := range ev {
					if strings.Contains(l, "An error report file with more information is saved as:") && i+1 < len(ev) {
						f["path"] = bannerText(ev[i+1])
					}
				}
			},
		},
		{
			Name:        ReplayStart,
			Description: "a stream processor started replaying the log (Processor starts replay of events)",
			Literals:    []string{"Processor starts replay of events"},
			fields: func(ev []string, f map[string]string) {
				firstSubmatch(replayRe, ev, f, "snapshot_position", "replay_mode")
				partitionField(ev, f)
			},
		},
		{
			Name:        PartitionHealthy,
			Description: "a partition recovered (recovered, marking it as healthy)",
			Literals:    []string{"recovered, marking it as healthy"},
			fields:      partitionField,
		},
		{
			Name:        NoMessageHandler,
			Description: "a request reached a broker whose partition has no command API handler (no message handler for command-api-N)",
			Literals:    []string{"no message handler for command-api-"},
			fields: func(ev []string, f map[string]string) {
				firstSubmatch(handlerRe, ev, f, "subject")
			},
		},
		{
			Name:        DeadlineExceeded,
			Description: "a client call timed out (gRPC DEADLINE_EXCEEDED)",
			Literals:    []string{"code = DeadlineExceeded", "DEADLINE_EXCEEDED"},
			Group:       GroupStack,
		},
	}
}

// Names returns the built-in detector names.
func Names() []string {
	var out []string
	for _, d := range Builtins() {
		out = append(out, d.Name)
	}
	return out
}
