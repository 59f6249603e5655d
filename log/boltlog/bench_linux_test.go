package boltlog

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFdatasync measures the disk, not boltlog: one 4 KiB overwrite of
// an allocated block followed by fdatasync, as bbolt issues per commit (it
// issues two). Run it with the others to read their figures against the
// disk's state at the time.
func BenchmarkFdatasync(b *testing.B) {
	f, err := os.Create(benchPath(b))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	if _, err := f.Write(make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := f.WriteAt(page, int64(i%256)*4096); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "syncs/s")
}
