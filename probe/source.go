// Package probesrc carries the Java source of the journal probe so the
// nfslab binary can compile it on any machine with a JDK (see pkg/probe).
package probesrc

import _ "embed"

//go:embed JournalProbe.java
var source []byte

// Source returns the Java source of JournalProbe.
func Source() []byte { return append([]byte(nil), source...) }

// ClassName is the probe's main class.
const ClassName = "JournalProbe"
