//go:build unix

package suite

import (
	"os"
	"syscall"
)

// allocatedBytes is the disk space a file takes (its blocks), as du counts.
func allocatedBytes(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
