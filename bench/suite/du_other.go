//go:build !unix

package suite

import "os"

// allocatedBytes is the file's size where its blocks cannot be asked for.
func allocatedBytes(fi os.FileInfo) int64 { return fi.Size() }
