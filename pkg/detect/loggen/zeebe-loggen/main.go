// Command zeebe-loggen writes a deterministic Zeebe-like log for the
// detector benchmark (docs/benchmarks-detect.md):
//
//	go run ./pkg/detect/loggen/zeebe-loggen -lines 2000000 > /tmp/zeebe.log
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/nfslab/nfslab/pkg/detect/loggen"
)

func main() {
	lines := flag.Int("lines", 2_000_000, "lines to write")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := loggen.Write(os.Stdout, *lines, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "zeebe-loggen:", err)
		os.Exit(1)
	}
}
