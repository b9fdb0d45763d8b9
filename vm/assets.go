package vmassets

import _ "embed"

//go:embed guest-init
var guestInit []byte

// GuestInit returns the lab VM's init script (installed as /nfslab/init).
func GuestInit() []byte { return append([]byte(nil), guestInit...) }
