// CtrProbe is the workload of pkg/container's life-cycle, cleanup and
// netns tests, which need output on both streams and TCP connects. The
// storage tests (SIGBUS on replay, pause while appending) run the shared
// journal probe, probe/JournalProbe.java, instead. Every mode is bounded in
// time.
//
//   tick              print "tick N" every 100 ms (stdout) and "warn N" every
//                     10th tick (stderr), for at most 10 minutes
//   connect HOST PORT try a TCP connect every 200 ms and print the outcome
import java.net.InetSocketAddress;
import java.net.Socket;

public class CtrProbe {
    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "tick" -> tick();
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
