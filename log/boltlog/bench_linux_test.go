package boltlog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
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

// BenchmarkWriteAmplification reports the bytes the process wrote to the
// disk (Linux's /proc/self/io write_bytes: data pages, bbolt's meta pages,
// and what fsync makes the file system write) per byte of entry appended,
// for entries the size of a cruzdb intention (600 B), a small afterimage
// (2.4 KB) and the combined commits of cruzd (24 KB, 100 KB), from 1 and 16
// appenders.
func BenchmarkWriteAmplification(b *testing.B) {
	for _, size := range []int{600, 2400, 24000, 100000} {
		for _, appenders := range []int{1, 16} {
			b.Run(fmt.Sprintf("size=%d/appenders=%d", size, appenders), func(b *testing.B) {
				l, err := Open(benchPath(b), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				data := bytes.Repeat([]byte{0xa5}, size)
				var left atomic.Int64
				left.Store(int64(b.N))
				var wg sync.WaitGroup
				before := diskWrites(b)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for range appenders {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							if _, err := l.Append(context.Background(), data); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(diskWrites(b)-before)/float64(b.N*size), "written/appended")
			})
		}
	}
}

// diskWrites returns the bytes this process has caused to be written to
// storage so far.
func diskWrites(b *testing.B) int64 {
	io, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for line := range bytes.Lines(io) {
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("write_bytes: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Skip("no write_bytes in /proc/self/io")
	return 0
}
