package boltlog

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// benchPath returns a file path for a benchmark. BOLTLOG_BENCH_DIR chooses the
// directory (it must be on the disk to measure: a tmpfs makes fsync free);
// by default it is the test's temporary directory.
func benchPath(b *testing.B) string {
	dir := os.Getenv("BOLTLOG_BENCH_DIR")
	if dir == "" {
		return filepath.Join(b.TempDir(), "bench.bolt")
	}
	d, err := os.MkdirTemp(dir, "boltlog-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "bench.bolt")
}

// BenchmarkAppend measures durable appends (NoSync false: every group is
// fsynced) from 1, 16 and 64 concurrent appenders. It reports appends/s,
// appends per commit (the group size) and the append latency's p50 and p99.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{100, 4096} {
		for _, appenders := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("size=%d/appenders=%d", size, appenders), func(b *testing.B) {
				benchAppend(b, size, appenders)
			})
		}
	}
}

// BenchmarkAppendNoSync is BenchmarkAppend without fsync (Options.NoSync):
// not a durable figure, but the ceiling that CPU and bbolt's in-memory work
// put on appends, to read BenchmarkAppend against.
func BenchmarkAppendNoSync(b *testing.B) {
	for _, appenders := range []int{1, 64} {
		b.Run(fmt.Sprintf("size=100/appenders=%d", appenders), func(b *testing.B) {
			benchAppendOpts(b, 100, appenders, true)
		})
	}
}

func benchAppend(b *testing.B, size, appenders int) { benchAppendOpts(b, size, appenders, false) }

func benchAppendOpts(b *testing.B, size, appenders int, noSync bool) {
	var commits atomic.Int64
	l := mustOpen(b, benchPath(b), &Options{NoSync: noSync, commitTx: func(tx *bolt.Tx) error {
		commits.Add(1)
		return tx.Commit()
	}})
	defer l.Close()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	lat := make([][]time.Duration, appenders)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for g := range appenders {
		wg.Go(func() {
			ls := make([]time.Duration, 0, b.N/appenders+1)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := l.Append(bg, data); err != nil {
					b.Error(err)
					return
				}
				ls = append(ls, time.Since(t0))
			}
			lat[g] = ls
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	if c := commits.Load(); c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "appends/commit")
	}
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Nanoseconds())/1e3, "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds())/1e3, "p99-µs")
	}
}

// BenchmarkBoltPut is the baseline: one durable bbolt transaction with one Put
// per operation, from one goroutine, with sequential 8-byte keys. "default"
// uses bbolt's default options, as a plain bbolt user would; "tuned" uses the
// options boltlog opens its file with.
func BenchmarkBoltPut(b *testing.B) {
	for _, size := range []int{100, 4096} {
		for _, tuned := range []bool{false, true} {
			name := "default"
			if tuned {
				name = "tuned"
			}
			b.Run(fmt.Sprintf("size=%d/%s", size, name), func(b *testing.B) {
				benchBoltPut(b, size, tuned)
			})
		}
	}
}

func benchBoltPut(b *testing.B, size int, tuned bool) {
	var opts *bolt.Options
	if tuned {
		opts = &bolt.Options{
			NoFreelistSync:  true,
			FreelistType:    bolt.FreelistMapType,
			InitialMmapSize: defaultInitialMmapSize,
		}
	}
	db, err := bolt.Open(benchPath(b), 0o600, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	bucket := []byte("b")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		err := db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucket)
			if tuned {
				bk.FillPercent = 1.0
			}
			return bk.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), data)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "puts/s")
}

// BenchmarkOneAppenderVsBoltPut compares one appender with the baseline of
// BenchmarkBoltPut (default bbolt options) fairly on a disk whose speed
// drifts: the two alternate in bursts of 50 operations on the same disk, and
// the medians of the bursts' per-operation times are compared. One op is one
// Append plus one bbolt put. "ratio" is put-µs / append-µs: at least 1 means
// one appender is at least as fast as a single durable bbolt put.
func BenchmarkOneAppenderVsBoltPut(b *testing.B) {
	for _, size := range []int{100, 4096} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			l := mustOpen(b, benchPath(b), nil)
			defer l.Close()
			db, err := bolt.Open(benchPath(b), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			bucket := []byte("b")
			if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
				b.Fatal(err)
			}
			data := make([]byte, size)
			var key uint64
			put := func() {
				key++
				if err := db.Update(func(tx *bolt.Tx) error {
					return tx.Bucket(bucket).Put(binary.BigEndian.AppendUint64(nil, key), data)
				}); err != nil {
					b.Fatal(err)
				}
			}
			appendOne := func() {
				if _, err := l.Append(bg, data); err != nil {
					b.Fatal(err)
				}
			}
			const burst = 50
			var appendUS, putUS []float64
			timeBurst := func(n int, op func()) float64 {
				start := time.Now()
				for range n {
					op()
				}
				return float64(time.Since(start).Nanoseconds()) / float64(n) / 1e3
			}
			b.ResetTimer()
			for done, i := 0, 0; done < b.N; done, i = done+burst, i+1 {
				n := min(burst, b.N-done)
				if i%2 == 0 {
					appendUS = append(appendUS, timeBurst(n, appendOne))
					putUS = append(putUS, timeBurst(n, put))
				} else {
					putUS = append(putUS, timeBurst(n, put))
					appendUS = append(appendUS, timeBurst(n, appendOne))
				}
			}
			b.StopTimer()
			slices.Sort(appendUS)
			slices.Sort(putUS)
			a, p := appendUS[len(appendUS)/2], putUS[len(putUS)/2]
			b.ReportMetric(a, "append-µs")
			b.ReportMetric(p, "put-µs")
			b.ReportMetric(p/a, "ratio")
		})
	}
}
