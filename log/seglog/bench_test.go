package seglog

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend is durable appends of 200-byte entries (fdatasync on)
// from 1 and 64 concurrent appenders.
func BenchmarkAppend(b *testing.B) {
	for _, appenders := range []int{1, 64} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			l := mustOpenB(b, nil)
			defer l.Close()
			data := bytes.Repeat([]byte("a"), 200)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range appenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := l.Append(context.Background(), data); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			st := l.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			b.ReportMetric(float64(st.Entries)/float64(max(st.Groups, 1)), "entries/group")
		})
	}
}

// BenchmarkSmallBehindLarge measures the latency of small appends (an
// intention's size) alone, and while another goroutine appends batches of
// four 1 MiB entries (afterimages) back to back: with the group formation
// of commitNext, a small append waits for the group being written and its
// own, never for a queued large batch.
func BenchmarkSmallBehindLarge(b *testing.B) {
	for _, large := range []bool{false, true} {
		b.Run(fmt.Sprintf("large-batches=%v", large), func(b *testing.B) {
			l := mustOpenB(b, nil)
			defer l.Close()
			ctx := context.Background()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var bigBatches atomic.Int64
			if large {
				big := bytes.Repeat([]byte("b"), 1<<20)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := l.AppendBatch(ctx, [][]byte{big, big, big, big}); err != nil {
							b.Error(err)
							return
						}
						bigBatches.Add(1)
					}
				}()
			}
			small := bytes.Repeat([]byte("s"), 200)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t := time.Now()
				if _, err := l.Append(ctx, small); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(bigBatches.Load())/b.Elapsed().Seconds(), "4MiB-batches/s")
		})
	}
}

func mustOpenB(b *testing.B, opts *Options) *Log {
	b.Helper()
	l, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkReadBack is the processor's pattern: append an entry, then read
// it back, with the ring of recent groups (recent) and without it (every
// read a pread of the file). NoSync, so that fdatasync does not hide the
// difference.
func BenchmarkReadBack(b *testing.B) {
	for _, size := range []int{200, 256 << 10} {
		for _, ring := range []bool{true, false} {
			b.Run(fmt.Sprintf("size=%d/ring=%v", size, ring), func(b *testing.B) {
				l := mustOpenB(b, &Options{NoSync: true})
				defer l.Close()
				l.noRecent = !ring
				data := bytes.Repeat([]byte("i"), size)
				ctx := context.Background()
				b.SetBytes(int64(size))
				for b.Loop() {
					p, err := l.Append(ctx, data)
					if err != nil {
						b.Fatal(err)
					}
					got, err := l.Read(ctx, p)
					if err != nil || len(got) != size {
						b.Fatalf("read %d: %d bytes, %v", p, len(got), err)
					}
				}
			})
		}
	}
}
