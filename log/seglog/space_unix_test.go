//go:build unix

package seglog

import (
	"os"
	"syscall"
)

// allocated returns the bytes of the blocks allocated to a file
// (st_blocks*512), or -1 if unknown.
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return -1
}
