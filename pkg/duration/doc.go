// Package duration is nfslab's one Duration type: a time.Duration written
// as Go duration text ("250ms", "60s", "1m30s") in YAML, JSON, flags and
// state files. Scenarios, faultfs rules and the lab VM's job and status
// files all use it, so a duration reads the same everywhere.
package duration
