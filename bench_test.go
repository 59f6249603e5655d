package cruzdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/boltlog"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

func benchKey(i uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, i*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint64(k[8:], i)
	return k
}

// blindIntentions appends n intentions of w blind writes (16 B keys out of
// keys, 100 B values) to l, after a header if the log is empty.
func blindIntentions(b testing.TB, l log.Log, n, w, keys int, seed uint64) {
	ctx := context.Background()
	if tail, _ := l.Tail(ctx); tail == 0 {
		l.Append(ctx, entry.EncodeHeader(entry.NewHeader(1<<20, DefaultMaxKeySize, DefaultMaxValueSize)))
	}
	r := rand.New(rand.NewPCG(seed, 5))
	val := make([]byte, 100)
	var buf []byte
	for range n {
		tail, _ := l.Tail(ctx)
		in := &intention.Intention{Snapshot: uint64(tail) - 1, Token: r.Uint64()}
		for range w {
			in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: benchKey(r.Uint64N(uint64(keys))), Value: val})
		}
		buf = entry.AppendIntention(buf[:0], in)
		if _, err := l.Append(ctx, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlush measures afterimage flush throughput: a log of b.N
// intentions (2 writes into 10K keys) is replayed by a fresh DB and every
// delta flushed through a memlog with injected append latency. ideal/s is
// workers/latency (serial: 1/latency); eff% the measured share of it.
func BenchmarkFlush(b *testing.B) {
	for _, lat := range []time.Duration{500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond} {
		for _, workers := range []int{0, 1, 4, 16, 64, 256} {
			name := fmt.Sprintf("latency=%v/workers=%d", lat, workers)
			if workers == 0 {
				name = fmt.Sprintf("latency=%v/serial", lat)
			}
			b.Run(name, func(b *testing.B) { benchFlush(b, lat, workers) })
		}
	}
}

func benchFlush(b *testing.B, lat time.Duration, workers int) {
	var slow atomic.Bool
	l := memlog.New(&memlog.Options{Latency: func(op memlog.Op, _ *rand.Rand) time.Duration {
		if op == memlog.OpAppend && slow.Load() {
			return lat
		}
		return 0
	}})
	blindIntentions(b, l, b.N, 2, 10000, 1)
	slow.Store(true)
	o := &Options{Log: l, FlushWorkers: max(workers, 1), FlushSerial: workers == 0, MaxUnflushedBytes: 1 << 40}
	b.ResetTimer()
	db, err := Open("", o)
	if err != nil {
		b.Fatal(err)
	}
	opened := b.Elapsed()
	if err := db.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := db.Stats()
	db.Close()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(100*opened.Seconds()/secs, "open%")
	rate := float64(st.AfterimagesWritten) / secs
	ideal := float64(max(workers, 1)) / lat.Seconds()
	b.ReportMetric(rate, "afterimages/s")
	b.ReportMetric(float64(st.AfterimageBytes)/secs/1e6, "MB/s")
	b.ReportMetric(ideal, "ideal/s")
	b.ReportMetric(100*rate/ideal, "eff%")
	if tot := st.PointersPhysical + st.PointersIntention; tot > 0 {
		b.ReportMetric(100*float64(st.PointersIntention)/float64(tot), "intention-ptr%")
	}
}

// BenchmarkFlushBolt is flush throughput on the embedded log, no injection.
func BenchmarkFlushBolt(b *testing.B) {
	for _, workers := range []int{0, 1, 16, 64} {
		name := fmt.Sprintf("workers=%d", workers)
		if workers == 0 {
			name = "serial"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			l, err := boltlog.Open(filepath.Join(dir, LogFileName), nil)
			if err != nil {
				b.Fatal(err)
			}
			blindIntentions(b, l, b.N, 2, 10000, 1) // a log of intentions, no afterimages yet
			l.Close()
			b.ResetTimer()
			db, err := Open(dir, &Options{FlushWorkers: max(workers, 1), FlushSerial: workers == 0, MaxUnflushedBytes: 1 << 40})
			if err != nil {
				b.Fatal(err)
			}
			if err := db.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			st := db.Stats()
			db.Close()
			b.ReportMetric(float64(st.AfterimagesWritten)/b.Elapsed().Seconds(), "afterimages/s")
			b.ReportMetric(float64(st.AfterimageBytes)/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}

// countingLog counts reads.
type countingLog struct {
	log.Log
	reads atomic.Int64
}

func (c *countingLog) Read(ctx context.Context, p log.Position) ([]byte, error) {
	c.reads.Add(1)
	return c.Log.Read(ctx, p)
}

var (
	historyLogs   = map[int]*memlog.Log{}
	historyLogsMu sync.Mutex
)

// historyLog builds (once) a log of n committed intentions, each followed
// by its afterimage, then 1,000 more intentions not yet flushed: a node
// restarting on it finds a safe point 1,000 intentions (2,000 entries
// counting their missing afterimages) behind the tail whatever n is.
func historyLog(b *testing.B, n int) *memlog.Log {
	historyLogsMu.Lock()
	defer historyLogsMu.Unlock()
	if l, ok := historyLogs[n]; ok {
		return l
	}
	ctx := context.Background()
	l := memlog.New(nil)
	h := entry.NewHeader(1<<20, DefaultMaxKeySize, DefaultMaxValueSize)
	l.Append(ctx, entry.EncodeHeader(h))
	st := processor.NewState(*h, cowtree.New(nil), 0)
	r := rand.New(rand.NewPCG(9, 9))
	val := make([]byte, 100)
	var buf []byte
	appendOne := func(flush bool) {
		tail, _ := l.Tail(ctx)
		in := &intention.Intention{Snapshot: uint64(tail) - 1, Token: r.Uint64(), Ops: []intention.Op{
			{Kind: intention.OpPut, Key: benchKey(r.Uint64N(4096)), Value: val},
			{Kind: intention.OpPut, Key: benchKey(r.Uint64N(4096)), Value: val},
		}}
		buf = entry.AppendIntention(buf[:0], in)
		pos, _ := l.Append(ctx, buf)
		// The state skips the positions of afterimages in between.
		for p := st.Pos() + 1; p < uint64(pos); p++ {
			st.Skip(p)
		}
		d, delta, err := st.Apply(uint64(pos), in)
		if err != nil || d.Outcome != processor.Committed {
			b.Fatal(d.Outcome, err)
		}
		if flush {
			ai, _ := flusher.Serialize(delta, delta.Pos, nil)
			buf = entry.AppendAfterimage(buf[:0], ai)
			l.Append(ctx, buf)
		}
	}
	for range n {
		appendOne(true)
	}
	for range 1000 {
		appendOne(false)
	}
	historyLogs[n] = l
	return l
}

// BenchmarkOpen measures Open on a log with a long history and a recent
// safe point: time and log reads must not depend on the history's length.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("history=%d", n), func(b *testing.B) {
			base := historyLog(b, n)
			b.ResetTimer() // building the history (once per process) is not an open
			var reads int64
			for range b.N {
				b.StopTimer()
				cl := &countingLog{Log: base.CrashClone()}
				b.StartTimer()
				db, err := Open("", &Options{Log: cl})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				reads += cl.reads.Load()
				if db.SafePoint().Intention == 0 {
					b.Fatal("no safe point")
				}
				db.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(reads)/float64(b.N), "reads/open")
			// Every open replays the 1,000 unflushed intentions after the
			// safe point, loading the tree lazily: an upper bound of the
			// time replay takes, so a lower bound of its rate.
			b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "replayed-intentions/s")
		})
	}
}

// BenchmarkReadEvicted reads nodes that were evicted, reached through
// physical or through intention pointers (after a restart, intention
// pointers resolve by scanning the log forward).
func BenchmarkReadEvicted(b *testing.B) {
	for _, serial := range []bool{true, false} {
		kind := "physical"
		if !serial {
			kind = "intention"
		}
		b.Run(kind, func(b *testing.B) {
			l := memlog.New(&memlog.Options{AppendLatency: 200 * time.Microsecond})
			db, err := Open("", &Options{Log: l, FlushSerial: serial, FlushWorkers: 64, CacheBytes: 64 << 10})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 40 {
						db.Update(ctx, func(tx *Txn) error { return tx.Put(benchKey(uint64(w*1000+i)), make([]byte, 100)) })
					}
				}()
			}
			wg.Wait()
			db.Flush(ctx)
			st := db.Stats()
			db.Close()
			// Reopen with an empty index and a cache too small to keep anything.
			db, err = Open("", &Options{Log: l, CacheBytes: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			b.ResetTimer()
			for i := range b.N {
				w, j := i%16, (i/16)%40
				db.View(ctx, func(tx *Txn) error { _, err := tx.Get(benchKey(uint64(w*1000 + j))); return err })
			}
			b.StopTimer()
			after := db.Stats()
			b.ReportMetric(float64(after.CacheMisses)/float64(b.N), "loads/read")
			b.ReportMetric(float64(after.ForwardScans), "forward-scans")
			if tot := st.PointersPhysical + st.PointersIntention; tot > 0 {
				b.ReportMetric(100*float64(st.PointersIntention)/float64(tot), "intention-ptr%")
			}
		})
	}
}

// BenchmarkUpdate is durable one-put transactions on the embedded log
// (fsync on), from 1, 16 and 64 concurrent clients.
func BenchmarkUpdate(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			val := make([]byte, 100)
			benchUpdates(b, clients, func(i uint64, tx *Txn) error { return tx.Put(benchKey(i), val) })
		})
	}
}

// benchUpdates runs b.N Updates of fn (given the update's number, from 1)
// from clients goroutines on a fresh embedded log with fsync, and reports
// txns/s; it returns the DB's stats after the run.
func benchUpdates(b *testing.B, clients int, fn func(i uint64, tx *Txn) error) Stats {
	db, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var next atomic.Uint64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > uint64(b.N) {
					return
				}
				if err := db.Update(ctx, func(tx *Txn) error { return fn(i, tx) }); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txns/s")
	return db.Stats()
}

// BenchmarkView is point reads through View on 100K keys held in memory.
func BenchmarkView(b *testing.B) {
	db, err := Open("", &Options{Log: memlog.New(nil)})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	const keys = 100_000
	val := make([]byte, 100)
	putBatches(b, db, keys, 1000, func(j int) ([]byte, []byte) { return benchKey(uint64(j)), val })
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			db.View(ctx, func(tx *Txn) error {
				_, err := tx.Get(benchKey(r.Uint64N(keys)))
				return err
			})
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkUpdateHotKey is the README's counter: every transaction reads
// and increments one key, from 1, 4 and 16 writers, durable on the
// embedded log. Update retries conflicts (with backoff) until they commit;
// conflicts/txn is how many attempts lost on the way.
func BenchmarkUpdateHotKey(b *testing.B) {
	key := []byte("counter")
	for _, writers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			st := benchUpdates(b, writers, func(_ uint64, tx *Txn) error {
				v, err := tx.Get(key)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				return tx.Put(key, next(v))
			})
			b.ReportMetric(float64(st.Conflicts)/float64(b.N), "conflicts/txn")
		})
	}
}
