// Package scenario is the typed form of an nfslab scenario file: the
// storage under test, the target that uses it, the load, a timeline of
// faults and actions, the expectations that make up the verdict, and the
// rollbacks that always run.
//
// Files are YAML decoded strictly (an unknown field is an error with its
// line and column) and validated as a whole before anything is touched:
// Validate names every bad value with its path in the document.
package scenario
