package vmassets

import _ "embed"

//go:embed guest-init
var guestInit []byte

// GuestInit returns the lab VM's init script (installed as /nfslab/init).
func GuestInit() []byte { return append([]byte(nil), guestInit...) }

//go:embed kernel-localio.config
var kernelLocalIO []byte

// KernelLocalIOConfig returns the config fragment of the lab VM's LOCALIO
// kernel (nfslab vm kernel; applied on top of `make allnoconfig`).
func KernelLocalIOConfig() []byte { return append([]byte(nil), kernelLocalIO...) }
