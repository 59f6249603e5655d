//go:build !unix

package seglog

import "os"

// lockFile is a no-op where flock is not available: the caller must not
// open one directory twice.
func lockFile(f *os.File) error { return nil }
