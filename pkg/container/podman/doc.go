// Package podman implements container.Runtime with the podman v5 REST
// bindings, and starts a private podman service when none runs.
//
// It is the only nfslab package that imports the bindings, and so the only
// one (with its importers: cmd/nfslab, pkg/backends) that needs the Makefile's
// build tags (remote containers_image_openpgp exclude_graphdriver_btrfs
// exclude_graphdriver_devicemapper) and CGO_ENABLED=0.
//
// Both podman 4.3 (Debian 12) and podman 5 services are supported by keeping
// to API calls both serve.
package podman
