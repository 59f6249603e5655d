package boltlog

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func BenchmarkZZPhases(b *testing.B) {
	var commits, inCommit atomic.Int64
	var last time.Time
	var gap time.Duration
	l := mustOpen(b, benchPath(b), &Options{NoPreallocate: os.Getenv("BOLTLOG_BENCH_NOPREALLOC") != "", commitTx: func(tx *bolt.Tx) error {
		t0 := time.Now()
		if !last.IsZero() {
			gap += t0.Sub(last)
		}
		err := tx.Commit()
		last = time.Now()
		commits.Add(1)
		inCommit.Add(int64(last.Sub(t0)))
		return err
	}})
	defer l.Close()
	data := make([]byte, 100)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				l.Append(bg, data)
			}
		})
	}
	wg.Wait()
	c := commits.Load()
	b.ReportMetric(float64(inCommit.Load())/float64(c)/1e3, "commit-µs")
	b.ReportMetric(float64(gap.Nanoseconds())/float64(c)/1e3, "between-µs")
	b.ReportMetric(float64(b.N)/float64(c), "per-commit")
}
