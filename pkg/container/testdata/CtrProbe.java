// CtrProbe is the workload of pkg/container's privileged tests: a tiny JVM
// program that stands in for the Zeebe broker until the shared journal
// probe lands. Every mode is bounded in time.
//
//   tick              print "tick N" every 100 ms (stdout) and "warn N" every
//                     10th tick (stderr), for at most 10 minutes
//   sigbus FILE       write and map FILE, truncate it under the mapping and
//                     run CRC32C over the mapped pages, as Zeebe's replay
//                     does: the JVM dies of SIGBUS in the CRC32C stub
//   connect HOST PORT try a TCP connect every 200 ms and print the outcome
import java.io.RandomAccessFile;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.zip.CRC32C;

public class CtrProbe {
    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "tick" -> tick();
            case "sigbus" -> sigbus(args[1]);
            case "connect" -> connect(args[1], Integer.parseInt(args[2]));
            default -> throw new IllegalArgumentException("unknown mode " + args[0]);
        }
    }

    static void tick() throws Exception {
        for (long i = 0; i < 6000; i++) {
            System.out.println("tick " + i);
            if (i % 10 == 0) System.err.println("warn " + i);
            Thread.sleep(100);
        }
    }

    static void sigbus(String file) throws Exception {
        int size = 8 << 20;
        try (RandomAccessFile f = new RandomAccessFile(file, "rw")) {
            f.setLength(size);
            MappedByteBuffer buf = f.getChannel().map(FileChannel.MapMode.READ_WRITE, 0, size);
            for (int i = 0; i < size; i += 4096) buf.put(i, (byte) i);
            buf.force();
            System.out.println("Processor starts replay of events. [mapped " + size + " bytes]");
            // Pages past the new end of file are gone: touching them is SIGBUS,
            // as a mapped NFS page whose read fails.
            f.setLength(0);
            CRC32C crc = new CRC32C();
            crc.update(buf.position(0));
            System.out.println("unexpected: crc " + crc.getValue());
        }
    }

    static void connect(String host, int port) throws Exception {
        for (int i = 0; i < 3000; i++) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(host, port), 500);
                System.out.println("connect ok");
            } catch (Exception e) {
                System.out.println("connect failed: " + e.getMessage());
            }
            Thread.sleep(200);
        }
    }
}
