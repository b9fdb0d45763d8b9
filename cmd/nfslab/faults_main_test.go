package main

import (
	"os"
	"testing"
)

// asMainEnv makes the test binary act as the nfslab command: privileged
// tests start the daemon (and the direct path starts reapers) by
// re-executing it, so no separate build is needed.
const asMainEnv = "NFSLAB_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	// Every child this test binary starts of itself (daemon, reaper) must
	// run as nfslab, never as another round of tests.
	os.Setenv(asMainEnv, "1")
	os.Exit(m.Run())
}
