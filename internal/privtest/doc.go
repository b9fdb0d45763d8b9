// Package privtest guards tests that need root, kernel features or tools.
// Locally such a test skips with the reason; under CI=true it fails, because
// CI promises that every privileged test really ran.
package privtest
