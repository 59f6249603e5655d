//go:build linux

package suite

import (
	"syscall"
	"time"
)

// pageTouch maps size bytes of fresh anonymous memory, writes one byte of
// each 4 KiB page, and returns the mean time per page (0 if the mapping
// fails).
func pageTouch(size int) time.Duration {
	const page = 4096
	size = max(size, page)
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return 0
	}
	defer syscall.Munmap(b)
	start := time.Now()
	for i := 0; i < len(b); i += page {
		b[i] = 1
	}
	return time.Since(start) / time.Duration(size/page)
}
