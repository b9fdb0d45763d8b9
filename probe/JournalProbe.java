// JournalProbe does what a segmented, memory-mapped journal (such as
// Zeebe's) does to its data directory, so storage faults can be observed on
// the real JVM code paths:
//
//   - records (int length, int CRC32C, payload) are appended to segment
//     files of a fixed size that are mapped READ_WRITE with
//     FileChannel.map; the length is written last, as the commit marker;
//   - after each batch MappedByteBuffer.force() is called (msync MS_SYNC),
//     like a Raft commit flushing the journal;
//   - on start every existing segment is replayed: each record's CRC32C is
//     computed with java.util.zip.CRC32C.update(ByteBuffer) directly on
//     the MAPPED buffer, so the HotSpot intrinsic
//     (StubRoutines::updateBytesCRC32C) is the code that touches the
//     mapped pages.
//
// Failures are reported the way the JVM reports them: a failed force()
// throws java.io.UncheckedIOException (cause: IOException "Input/output
// error (msync with parameter MS_SYNC failed)"), which the probe lets
// escape main, so the JVM prints the stack trace and exits with status 1;
// the probe appends nothing after a failed force (like a Raft leader going
// inactive). A mapped page whose read fails raises SIGBUS; inside the
// CRC32C stub the JVM cannot turn that into an exception and crashes
// (exit status 134, hs_err_pid<pid>.log).
//
// The probe prints only its own progress lines, all starting "probe: ".
// It never imitates Zeebe's log lines.
//
// Usage: java JournalProbe --dir DIR [--segment-size 16M] [--record-size 1000]
//          [--batch 100] [--rate N|0] [--duration 10s] [--records N]
//          [--replay-only | --no-replay | --append-after-replay]
//
// Exit status: 0 done; 1 uncaught exception (JVM); 2 bad arguments;
// 3 replay found a corrupt record; 134 JVM crash (SIGBUS).

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

public final class JournalProbe {
    static final long MAGIC = 0x4e46534c41424a31L; // "NFSLABJ1"
    static final int HEADER = 64; // magic, version, id, segment size; rest zero
    static final int RECORD_HEADER = 8; // int length, int crc32c

    // Options.
    Path dir;
    long segmentSize = 16L << 20;
    int recordSize = 1000;
    int batch = 100;
    long rate; // records per second, 0 = unbounded
    long durationMillis; // 0 = no limit
    long maxRecords; // 0 = no limit
    boolean replay = true;
    boolean append = true;

    // Journal state.
    int segmentId; // current (last) segment id
    MappedByteBuffer current;
    FileChannel currentChannel;
    int position;
    long appended;
    int segments;
    long forces;

    public static void main(String[] args) throws IOException {
        JournalProbe p = new JournalProbe();
        String err = p.parse(args);
        if (err != null) {
            System.err.println("probe: " + err);
            System.err.println("probe: usage: JournalProbe --dir DIR [--segment-size 16M] [--record-size 1000]"
                    + " [--batch 100] [--rate N] [--duration 10s] [--records N]"
                    + " [--replay-only | --no-replay | --append-after-replay]");
            System.exit(2);
        }
        Files.createDirectories(p.dir);
        say("start dir=" + p.dir + " segment-size=" + p.segmentSize + " record-size=" + p.recordSize
                + " batch=" + p.batch + " rate=" + (p.rate == 0 ? "unbounded" : Long.toString(p.rate))
                + " pid=" + ProcessHandle.current().pid());
        if (p.replay) {
            if (!p.replayAll()) {
                System.exit(3);
            }
        }
        if (p.append) {
            p.appendLoop();
        }
    }

    static void say(String line) {
        System.out.println("probe: " + line);
        System.out.flush();
    }

    String parse(String[] a) {
        try {
            for (int i = 0; i < a.length; i++) {
                String k = a[i];
                switch (k) {
                    case "--replay-only": append = false; continue;
                    case "--no-replay": replay = false; continue;
                    case "--append-after-replay": replay = true; append = true; continue;
                    default:
                }
                if (i + 1 >= a.length) {
                    return "flag " + k + " needs a value";
                }
                String v = a[++i];
                switch (k) {
                    case "--dir": dir = Paths.get(v); break;
                    case "--segment-size": segmentSize = parseSize(v); break;
                    case "--record-size": recordSize = (int) parseSize(v); break;
                    case "--batch": batch = Integer.parseInt(v); break;
                    case "--rate": rate = Long.parseLong(v); break;
                    case "--duration": durationMillis = parseDuration(v); break;
                    case "--records": maxRecords = Long.parseLong(v); break;
                    default: return "unknown flag " + k;
                }
            }
        } catch (NumberFormatException e) {
            return "bad number: " + e.getMessage();
        }
        if (dir == null) return "--dir is required";
        if (segmentSize < 4096 || segmentSize > Integer.MAX_VALUE) return "--segment-size " + segmentSize + " is not in [4K, 2G)";
        if (recordSize < 1 || HEADER + RECORD_HEADER + recordSize > segmentSize) return "--record-size " + recordSize + " does not fit a segment";
        if (batch < 1) return "--batch " + batch + " must be at least 1";
        if (rate < 0) return "--rate " + rate + " is negative";
        if (maxRecords < 0) return "--records " + maxRecords + " is negative";
        if (durationMillis < 0) return "--duration is negative";
        if (!replay && !append) return "--replay-only and --no-replay exclude each other";
        return null;
    }

    static long parseSize(String v) {
        long mult = 1;
        String s = v.trim().toUpperCase();
        if (s.endsWith("B")) s = s.substring(0, s.length() - 1);
        if (s.endsWith("K")) { mult = 1L << 10; s = s.substring(0, s.length() - 1); }
        else if (s.endsWith("M")) { mult = 1L << 20; s = s.substring(0, s.length() - 1); }
        else if (s.endsWith("G")) { mult = 1L << 30; s = s.substring(0, s.length() - 1); }
        return Long.parseLong(s) * mult;
    }

    static long parseDuration(String v) {
        String s = v.trim();
        if (s.endsWith("ms")) return Long.parseLong(s.substring(0, s.length() - 2));
        if (s.endsWith("s")) return (long) (Double.parseDouble(s.substring(0, s.length() - 1)) * 1000);
        if (s.endsWith("m")) return (long) (Double.parseDouble(s.substring(0, s.length() - 1)) * 60000);
        return Long.parseLong(s) * 1000;
    }

    static Path segmentPath(Path dir, int id) {
        return dir.resolve("journal-" + id + ".log");
    }

    List<Integer> existingSegments() throws IOException {
        List<Integer> ids = new ArrayList<>();
        try (var s = Files.list(dir)) {
            s.forEach(p -> {
                String n = p.getFileName().toString();
                if (n.startsWith("journal-") && n.endsWith(".log")) {
                    try {
                        ids.add(Integer.parseInt(n.substring(8, n.length() - 4)));
                    } catch (NumberFormatException ignored) {
                        // not ours
                    }
                }
            });
        }
        ids.sort(null);
        return ids;
    }

    // replayAll opens and maps every segment and checks its header first,
    // as Zeebe's journal does when it loads its segments, and says
    // "replay mapped" before it reads any record: from then on the replay
    // needs no file system call, only mapped pages, so a storage fault set
    // at that line reaches the mapped reads (SIGBUS in the CRC32C stub on
    // a cold page) rather than an open or readdir (IOException). Then it
    // verifies each record's CRC32C on the mapped buffer. It leaves the
    // last segment open for appending.
    boolean replayAll() throws IOException {
        List<Integer> ids = existingSegments();
        long start = System.nanoTime();
        long total = 0;
        List<FileChannel> chans = new ArrayList<>();
        List<MappedByteBuffer> bufs = new ArrayList<>();
        for (int i = 0; i < ids.size(); i++) {
            int id = ids.get(i);
            boolean last = i == ids.size() - 1;
            Path p = segmentPath(dir, id);
            FileChannel ch = last && append
                    ? FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)
                    : FileChannel.open(p, StandardOpenOption.READ);
            MappedByteBuffer buf = ch.map(last && append ? FileChannel.MapMode.READ_WRITE : FileChannel.MapMode.READ_ONLY, 0, ch.size());
            buf.order(ByteOrder.BIG_ENDIAN);
            if (buf.getLong(0) != MAGIC) {
                say("replay corrupt segment=" + id + " offset=0 reason=bad-magic");
                return false;
            }
            chans.add(ch);
            bufs.add(buf);
        }
        say("replay mapped segments=" + ids.size());
        for (int i = 0; i < ids.size(); i++) {
            int id = ids.get(i);
            boolean last = i == ids.size() - 1;
            FileChannel ch = chans.get(i);
            MappedByteBuffer buf = bufs.get(i);
            long size = buf.capacity();
            int pos = HEADER;
            long n = 0;
            CRC32C crc = new CRC32C();
            while (pos + RECORD_HEADER <= size) {
                int len = buf.getInt(pos);
                if (len == 0) break;
                if (len < 0 || pos + RECORD_HEADER + (long) len > size) {
                    say("replay corrupt segment=" + id + " offset=" + pos + " reason=bad-length length=" + len);
                    return false;
                }
                int want = buf.getInt(pos + 4);
                crc.reset();
                // The mapped pages of the payload are first touched here,
                // by the CRC32C intrinsic.
                crc.update(buf.slice(pos + RECORD_HEADER, len));
                if ((int) crc.getValue() != want) {
                    say("replay corrupt segment=" + id + " offset=" + pos + " reason=checksum");
                    return false;
                }
                pos += RECORD_HEADER + len;
                n++;
            }
            total += n;
            say("replay segment=" + (i + 1) + "/" + ids.size() + " id=" + id + " records=" + n);
            if (last && append) {
                segmentId = id;
                current = buf;
                currentChannel = ch;
                position = pos;
            } else {
                ch.close();
            }
        }
        segments = ids.size();
        say("replay done segments=" + ids.size() + " records=" + total
                + " elapsed=" + (System.nanoTime() - start) / 1_000_000 + "ms");
        return true;
    }

    void openNextSegment() throws IOException {
        if (currentChannel != null) {
            currentChannel.close();
        }
        segmentId++;
        Path p = segmentPath(dir, segmentId);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(segmentSize);
        }
        currentChannel = FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE);
        current = currentChannel.map(FileChannel.MapMode.READ_WRITE, 0, segmentSize);
        current.order(ByteOrder.BIG_ENDIAN);
        current.putLong(0, MAGIC);
        current.putInt(8, 1);
        current.putInt(12, segmentId);
        current.putLong(16, segmentSize);
        position = HEADER;
        segments++;
    }

    // force() durations of the current report interval.
    long[] forceNanos = new long[64];
    int forceCount;

    static long[] appendLatency(long[] a, int n, long v) {
        if (n == a.length) {
            a = java.util.Arrays.copyOf(a, 2 * n);
        }
        a[n] = v;
        return a;
    }

    // forceLatency is " force_p50_ms=X force_p99_ms=Y" over the interval's
    // force() calls (nearest rank), or "" when there were none.
    static String forceLatency(long[] a, int n) {
        if (n == 0) {
            return "";
        }
        long[] s = java.util.Arrays.copyOf(a, n);
        java.util.Arrays.sort(s);
        long p50 = s[(int) Math.ceil(0.50 * n) - 1];
        long p99 = s[(int) Math.ceil(0.99 * n) - 1];
        return String.format(java.util.Locale.ROOT, " force_p50_ms=%.3f force_p99_ms=%.3f", p50 / 1e6, p99 / 1e6);
    }

    void appendLoop() throws IOException {
        if (current == null) {
            openNextSegment();
        }
        byte[] payload = new byte[recordSize];
        long seed = 0x9E3779B97F4A7C15L;
        for (int i = 0; i < payload.length; i++) {
            seed = seed * 6364136223846793005L + 1442695040888963407L;
            payload[i] = (byte) (seed >>> 56);
        }
        CRC32C crc = new CRC32C();
        long start = System.nanoTime();
        long lastReport = start;
        long lastCount = 0;
        long deadline = durationMillis > 0 ? start + durationMillis * 1_000_000 : Long.MAX_VALUE;
        while (true) {
            long now = System.nanoTime();
            if (now >= deadline || (maxRecords > 0 && appended >= maxRecords)) break;
            try {
                for (int b = 0; b < batch && (maxRecords == 0 || appended < maxRecords); b++) {
                    if (position + RECORD_HEADER + recordSize > segmentSize) {
                        current.force();
                        forces++;
                        openNextSegment();
                    }
                    long k = appended;
                    for (int j = 0; j < 8 && j < payload.length; j++) {
                        payload[j] = (byte) (k >>> (8 * j));
                    }
                    crc.reset();
                    crc.update(payload, 0, payload.length);
                    current.put(position + RECORD_HEADER, payload);
                    current.putInt(position + 4, (int) crc.getValue());
                    current.putInt(position, payload.length); // commit marker last
                    position += RECORD_HEADER + payload.length;
                    appended++;
                }
                // Commit: flush the batch to storage, as Raft does before
                // acknowledging. Timed: slowness shows as force() latency.
                long f0 = System.nanoTime();
                current.force();
                forceNanos = appendLatency(forceNanos, forceCount++, System.nanoTime() - f0);
                forces++;
            } catch (java.io.UncheckedIOException e) {
                // MappedByteBuffer.force() wraps the msync error. Stop
                // appending and let the JVM report it.
                say("force failed: " + e);
                throw e;
            }
            now = System.nanoTime();
            if (now - lastReport >= 1_000_000_000L) {
                double secs = (now - lastReport) / 1e9;
                say("append rate=" + Math.round((appended - lastCount) / secs) + "/s records=" + appended
                        + " segments=" + segments + " forces=" + forces + forceLatency(forceNanos, forceCount));
                forceCount = 0;
                lastReport = now;
                lastCount = appended;
            }
            if (rate > 0) {
                long due = start + (long) (appended * 1e9 / rate);
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    try {
                        Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        break;
                    }
                }
            }
        }
        long el = (System.nanoTime() - start) / 1_000_000;
        say("append done records=" + appended + " segments=" + segments + " forces=" + forces
                + " elapsed=" + el + "ms");
    }
}
