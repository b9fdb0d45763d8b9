// Package doccheck holds tests that keep the docs' commands working as
// written: every go command they show carries the build tags the podman
// bindings need and CGO_ENABLED=0, and the packages that need no bindings
// keep building without them.
package doccheck
