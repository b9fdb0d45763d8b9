// Package probe builds and runs the JVM journal probe (probe/JournalProbe.java,
// embedded in the binary): it compiles the source with the machine's javac
// into a cache keyed by the source hash, runs it with the JVM options that
// make its failures real and observable (hs_err file location, CRC32C
// intrinsic, no core dump), streams its output lines, and parses its
// progress lines so scenarios can measure append rates.
package probe
