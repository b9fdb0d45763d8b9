package loggen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

var threads = []string{"zb-actors-0", "zb-actors-1", "zb-fs-workers-0", "raft-server-0-1", "raft-server-0-2", "grpc-executor-3", "Broker-0-Exporter-1"}

var ordinary = []struct{ level, logger, msg string }{
	{"INFO", "io.camunda.zeebe.broker.system", "Transition to LEADER on term %d - transitioning CommandApiService"},
	{"INFO", "io.camunda.zeebe.broker.system", "Transition to FOLLOWER on term %d completed"},
	{"DEBUG", "io.camunda.zeebe.broker.exporter", "Exporter record position %d acknowledged by elasticsearch"},
	{"INFO", "io.camunda.zeebe.snapshot", "Committed new snapshot %d-1-4233-4230"},
	{"DEBUG", "io.atomix.raft.roles.LeaderRole", "RaftServer{raft-partition-partition-1} - Appended entry at index %d"},
	{"INFO", "io.camunda.zeebe.logstreams", "Compacting log up to position %d"},
	{"DEBUG", "io.camunda.zeebe.gateway", "Received CreateProcessInstanceRequest for process benchmark, key %d"},
	{"INFO", "io.atomix.raft.impl.RaftContext", "RaftServer{raft-partition-partition-1} - Found leader %d"},
	{"WARN", "io.camunda.zeebe.broker.jobstream", "Failed to push job %d to stream, retrying with another"},
	{"DEBUG", "io.camunda.zeebe.journal.file.SegmentedJournal", "Flushed segment %d to disk"},
}

// failure blocks are the seed's lines; %s is the record header.
var failures = [][]string{
	{"%s ERROR", "\tio.atomix.raft.impl.RaftContext - An uncaught exception occurred, transition to inactive role",
		"java.io.UncheckedIOException: java.io.IOException: Input/output error (msync with parameter MS_SYNC failed)",
		"\tat java.base/java.nio.MappedMemoryUtils.force(Unknown Source) ~[?:?]",
		"\tat io.camunda.zeebe.journal.file.Segment.flush(Segment.java:125) ~[zeebe-journal-8.7.5.jar:8.7.5]",
		"Caused by: java.io.IOException: Input/output error (msync with parameter MS_SYNC failed)",
		"\tat java.base/java.nio.MappedMemoryUtils.force0(Native Method) ~[?:?]",
		"\t... 24 more"},
	{"%s INFO", "\tio.atomix.raft.impl.RaftContext - Transitioning to INACTIVE"},
	{"%s WARN", "\tio.camunda.zeebe.broker.system - Out of disk space. Current available 0 bytes. Minimum needed 2147483648 bytes."},
	{"%s WARN", "\tio.camunda.zeebe.broker.system - Disk space usage is above threshold. Pausing stream processor."},
	{"%s INFO", "\tio.camunda.zeebe.processor - Processor starts replay of events. [snapshot-position: 611, replay-mode: PROCESSING]"},
	{"%s INFO", "\tio.camunda.zeebe.broker.system - Partition-1 recovered, marking it as healthy"},
	{"%s ERROR", "\tio.camunda.zeebe.broker.transport - no message handler for command-api-1"},
	{"#", "# A fatal error has been detected by the Java Runtime Environment:", "#",
		"#  SIGBUS (0x7) at pc=0x00007f89ec4601a5, pid=2, tid=49", "#", "# Problematic frame:",
		"# v  ~StubRoutines::updateBytesCRC32C 0x00007f89ec4601a5", "#",
		"# An error report file with more information is saved as:", "# /usr/local/zeebe/hs_err_pid2.log"},
}

// FailureEvery is how many lines pass, on average, between failure blocks.
const FailureEvery = 20000

// Write writes about lines lines (whole records only) to w.
func Write(w io.Writer, lines int, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t := time.Date(2025, 6, 12, 9, 0, 0, 0, time.UTC)
	for n := 0; n < lines; {
		t = t.Add(time.Duration(rng.IntN(3000)) * time.Microsecond)
		part := rng.IntN(3) + 1
		header := fmt.Sprintf("[%s] [%s] [{actor-name=ZeebePartition-%d, actor-scheduler=Broker-0, partitionId=%d}]",
			t.Format("2006-01-02 15:04:05.000"), threads[rng.IntN(len(threads))], part, part)
		if rng.IntN(FailureEvery) == 0 {
			for i, l := range failures[rng.IntN(len(failures))] {
				if i == 0 && l != "#" {
					l = fmt.Sprintf(l, header)
				}
				bw.WriteString(l)
				bw.WriteByte('\n')
				n++
			}
			continue
		}
		o := ordinary[rng.IntN(len(ordinary))]
		fmt.Fprintf(bw, "%s %s\n\t%s - "+o.msg+"\n", header, o.level, o.logger, rng.IntN(1<<20))
		n += 2
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing generated log: %w", err)
	}
	return nil
}
