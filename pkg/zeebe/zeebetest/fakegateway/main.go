// Command fakegateway serves zeebetest's in-process gateway on loopback, to
// try `nfslab zeebe load` without a broker:
//
//	go run ./pkg/zeebe/zeebetest/fakegateway -partitions 3 &
//	nfslab zeebe load --gateway <printed address> --insecure --rate 10/s
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nfslab/nfslab/pkg/zeebe/zeebetest"
)

func main() {
	partitions := flag.Int("partitions", 3, "partitions")
	flag.Parse()
	gw, err := zeebetest.Start(int32(*partitions))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakegateway:", err)
		os.Exit(1)
	}
	fmt.Println(gw.Addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	gw.Close()
}
