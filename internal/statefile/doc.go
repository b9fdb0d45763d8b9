// Package statefile keeps small JSON records, one file per record in a
// directory, so that what nfslab created survives a crash of the process
// that created it. A record is written to a temporary file and renamed
// over the old one, so a reader never sees half a record; removing a
// record that is not there is done, not an error.
package statefile
