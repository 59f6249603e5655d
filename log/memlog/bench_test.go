package memlog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

var entry100 = make([]byte, 100)

func BenchmarkAppend(b *testing.B) {
	l := memlog.New(nil)
	ctx := context.Background()
	b.SetBytes(int64(len(entry100)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(ctx, entry100); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	l := memlog.New(nil)
	ctx := context.Background()
	const n = 1 << 16
	for range n {
		if _, err := l.Append(ctx, entry100); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(entry100)))
	b.ReportAllocs()
	var p log.Position
	for b.Loop() {
		if _, err := l.Read(ctx, p); err != nil {
			b.Fatal(err)
		}
		p = (p + 1) % n
	}
}

func BenchmarkAppendRead(b *testing.B) {
	l := memlog.New(nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := l.Append(ctx, entry100)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Read(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendParallel(b *testing.B) {
	l := memlog.New(nil)
	b.SetBytes(int64(len(entry100)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := l.Append(ctx, entry100); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkReadParallel(b *testing.B) {
	l := memlog.New(nil)
	ctx := context.Background()
	const n = 1 << 16
	for range n {
		if _, err := l.Append(ctx, entry100); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(entry100)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var p log.Position
		for pb.Next() {
			if _, err := l.Read(ctx, p); err != nil {
				b.Error(err)
				return
			}
			p = (p + 1) % n
		}
	})
}

// BenchmarkSleep measures how precisely latency is applied: a read with
// ReadLatency lat, reporting the median and 99th percentile of how much longer
// than lat it took (means are dominated by the machine's scheduling noise).
func BenchmarkSleep(b *testing.B) {
	for _, lat := range []time.Duration{20 * time.Microsecond, 100 * time.Microsecond, 3 * time.Millisecond} {
		b.Run(lat.String(), func(b *testing.B) {
			l := memlog.New(&memlog.Options{ReadLatency: lat})
			ctx := context.Background()
			if _, err := l.Append(ctx, entry100); err != nil {
				b.Fatal(err)
			}
			var over []time.Duration
			for b.Loop() {
				start := time.Now()
				if _, err := l.Read(ctx, 0); err != nil {
					b.Fatal(err)
				}
				over = append(over, time.Since(start)-lat)
			}
			reportPercentiles(b, over)
		})
	}
}

func reportPercentiles(b *testing.B, xs []time.Duration) {
	if len(xs) == 0 {
		return
	}
	slices.Sort(xs)
	b.ReportMetric(float64(xs[len(xs)/2].Nanoseconds()), "p50-overshoot-ns")
	b.ReportMetric(float64(xs[len(xs)*99/100].Nanoseconds()), "p99-overshoot-ns")
}

// BenchmarkAppendLatencyParallel runs 64 appenders against a log with 100 µs
// of AppendLatency: one shared waker serves them all, so the throughput
// approaches 64 appends per 100 µs when the CPU allows.
func BenchmarkAppendLatencyParallel(b *testing.B) {
	const lat = 100 * time.Microsecond
	l := memlog.New(&memlog.Options{AppendLatency: lat})
	b.SetParallelism(32) // 32 × GOMAXPROCS goroutines
	var mu sync.Mutex
	var over []time.Duration
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			if _, err := l.Append(ctx, entry100); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start)-lat)
		}
		mu.Lock()
		over = append(over, mine...)
		mu.Unlock()
	})
	reportPercentiles(b, over)
}

// BenchmarkAppendLatencyCeiling is what the simulation of a remote log can
// deliver on this machine, with nothing else running: 64 appenders of
// 2,400-byte entries (the size of the flusher benchmark's afterimages) under
// 0.5, 1 and 2 ms of AppendLatency, and one reader reading every entry in
// order, as replay does. A flush benchmark on memlog cannot beat this line;
// "ideal" is appenders/latency.
func BenchmarkAppendLatencyCeiling(b *testing.B) {
	const appenders = 64
	data := make([]byte, 2400)
	for _, lat := range []time.Duration{500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond} {
		b.Run(fmt.Sprintf("latency=%v/appenders=%d", lat, appenders), func(b *testing.B) {
			l := memlog.New(&memlog.Options{AppendLatency: lat})
			ctx := context.Background()
			read := make(chan error, 1)
			appended := make(chan struct{}, 1) // an append returned
			go func() {
				for p := log.Position(0); p < log.Position(b.N); {
					if _, err := l.Read(ctx, p); err != nil {
						if !errors.Is(err, log.ErrNotWritten) {
							read <- err
							return
						}
						<-appended // p lands with some append that has not returned
						continue
					}
					p++
				}
				read <- nil
			}()
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for range appenders {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						if _, err := l.Append(ctx, data); err != nil {
							b.Error(err)
							return
						}
						select {
						case appended <- struct{}{}:
						default:
						}
					}
				})
			}
			wg.Wait()
			if err := <-read; err != nil {
				b.Fatal(err)
			}
			rate := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "appends/s")
			b.ReportMetric(100*rate*lat.Seconds()/appenders, "%ideal")
		})
	}
}
