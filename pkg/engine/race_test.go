//go:build race

package engine

// raceEnabled: the race detector slows everything 5-10x, so timing
// assertions only log under it.
const raceEnabled = true
