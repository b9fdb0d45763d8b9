// Package vmassets carries the guest-side files of nfslab's lab VM into the
// nfslab binary, so `nfslab vm build` works outside a checkout:
// guest-init, the guest's PID 1 (mounts, 9p share, `nfslab vm agent`,
// power-off). Its content is part of the image's cache key.
package vmassets
