package memlog_test

import (
	"context"
	"slices"
	"sync"
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
