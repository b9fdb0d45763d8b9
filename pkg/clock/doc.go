// Package clock is the time source injected into everything in nfslab that
// waits, expires or schedules, so that timing logic is tested with a fake
// clock instead of sleeps.
package clock
