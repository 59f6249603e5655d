package flusher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/flusher/nodecache"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

// BenchmarkLoad is the cost of reading back one evicted node: through a
// physical pointer (one read of the afterimage and a decode up to the
// node), through an intention pointer found in the index (the same, after
// a lookup), and through an intention pointer the index does not know (a
// forward scan from the intention to its afterimage, 40 entries of other
// intentions away). 1,000 afterimages of 30 nodes rotate. "cold" variants
// keep no afterimage between loads, so every load reads the log; the
// others keep them in the pager's entry cache (64 MiB), as a scan that
// comes back to an afterimage finds it.
func BenchmarkLoad(b *testing.B) {
	const n, gap = 1000, 40
	ctx := context.Background()
	l := memlog.New(nil)
	l.Append(ctx, entry.EncodeHeader(entry.NewHeader(1<<20, 1<<14, 8<<20)))
	intents := make([]uint64, n)
	afters := make([]uint64, n)
	val := make([]byte, 100)
	for i := range n {
		in := &intention.Intention{Snapshot: 1, Ops: []intention.Op{{Kind: intention.OpPut, Key: []byte("k"), Value: val}}}
		p, _ := l.Append(ctx, entry.AppendIntention(nil, in))
		intents[i] = uint64(p)
		for range gap { // other intentions between it and its afterimage
			l.Append(ctx, entry.AppendIntention(nil, in))
		}
		ai := &afterimage.Afterimage{Intention: uint64(p), Base: uint64(p)}
		for j := range 30 {
			ai.Nodes = append(ai.Nodes, afterimage.Node{Key: fmt.Appendf(nil, "key%04d", j), Value: val, Pos: uint64(p), MaxPos: uint64(p), MinTomb: afterimage.NoTombstone, Height: 1})
		}
		a, _ := l.Append(ctx, entry.AppendAfterimage(nil, ai))
		afters[i] = uint64(a)
	}
	for _, c := range []struct {
		name    string
		addr    func(i int) cowtree.Addr
		indexed bool
	}{
		{"physical", func(i int) cowtree.Addr { return cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: afters[i], Off: 7} }, false},
		{"intention-indexed", func(i int) cowtree.Addr { return cowtree.Addr{Kind: cowtree.AddrIntention, Pos: intents[i], Off: 7} }, true},
		{"intention-scan", func(i int) cowtree.Addr { return cowtree.Addr{Kind: cowtree.AddrIntention, Pos: intents[i], Off: 7} }, false},
		{"physical-cold", func(i int) cowtree.Addr { return cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: afters[i], Off: 7} }, false},
		{"intention-indexed-cold", func(i int) cowtree.Addr { return cowtree.Addr{Kind: cowtree.AddrIntention, Pos: intents[i], Off: 7} }, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			idx := nodecache.NewIndex(1 << 20)
			if c.indexed {
				for i := range n {
					idx.Put(intents[i], afters[i])
				}
			}
			p := nodecache.NewCache(l, idx, 0)
			if strings.HasSuffix(c.name, "-cold") {
				p.SetEntryCacheBytes(0) // keeps only the last afterimage read
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if !c.indexed && c.name == "intention-scan" && i%n == 0 {
					p.SetIndex(nodecache.NewIndex(1 << 20)) // forget what earlier scans learned
				}
				if _, err := p.LoadNode(c.addr(i % n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFlushThroughput is the flusher alone: b.N deltas (intentions of
// 2 writes into 10K keys, made beforehand by a processor.State) are handed
// over as fast as the default MaxUnflushedBytes lets them in (WaitRoom, as
// commits wait), and every afterimage is appended to a memlog with an
// injected append latency. A reader goroutine stands in for the processor:
// it reads the log in order and confirms each afterimage (Saw), as replay
// does. Replay's own CPU is not in this figure (BenchmarkFlush in the root
// package has both). ideal/s is workers/latency (serial: 1/latency).
//
// latency=0 is the CPU bound: flusher, harness and confirmer on this
// machine's cores with nothing to wait for. A latency whose ideal/s is above
// that figure cannot reach its ideal however the flusher overlaps appends.
func BenchmarkFlushThroughput(b *testing.B) {
	for _, lat := range []time.Duration{0, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond} {
		for _, workers := range []int{0, 1, 4, 16, 64, 256} {
			name := fmt.Sprintf("latency=%v/workers=%d", lat, workers)
			if workers == 0 {
				name = fmt.Sprintf("latency=%v/serial", lat)
			}
			b.Run(name, func(b *testing.B) { benchFlushThroughput(b, lat, workers) })
		}
	}
}

func benchFlushThroughput(b *testing.B, lat time.Duration, workers int) {
	ctx := context.Background()
	var slow atomic.Bool
	l := memlog.New(&memlog.Options{Latency: func(op memlog.Op, _ *rand.Rand) time.Duration {
		if op == memlog.OpAppend && slow.Load() {
			return lat
		}
		return 0
	}})
	hdr := *entry.NewHeader(1<<20, 1<<14, 8<<20)
	l.Append(ctx, entry.EncodeHeader(&hdr))
	st := processor.NewState(hdr, cowtree.New(nil), 0)
	r := rand.New(rand.NewPCG(1, 5))
	val := make([]byte, 100)
	deltas := make([]*processor.Delta, b.N)
	var last uint64
	for i := range deltas {
		in := &intention.Intention{Snapshot: last, Token: r.Uint64()}
		for range 2 {
			k := fmt.Appendf(nil, "key%08d", r.IntN(10000))
			in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: k, Value: val})
		}
		p, err := l.Append(ctx, entry.AppendIntention(nil, in))
		if err != nil {
			b.Fatal(err)
		}
		dec, d, err := st.Apply(uint64(p), in)
		if err != nil || dec.Outcome != processor.Committed {
			b.Fatalf("%v %v", dec.Outcome, err)
		}
		deltas[i], last = d, uint64(p)
	}
	appended := make(chan struct{}, 1)
	tl := &timedLog{Log: l}
	f, err := New(Options{Log: tl, Workers: max(workers, 1), Serial: workers == 0, Policy: PolicyAll,
		Appended: func() {
			select {
			case appended <- struct{}{}:
			default:
			}
		}}, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Stop()
	stop := make(chan struct{})
	confirmerDone := make(chan struct{})
	go func() { // the processor's part: confirm afterimages in log order
		defer close(confirmerDone)
		for p := log.Position(last + 1); ; {
			data, err := l.Read(ctx, p)
			if err != nil {
				if !errors.Is(err, log.ErrNotWritten) {
					b.Error(err)
					return
				}
				select {
				case <-appended: // every afterimage append calls Appended once it returned
				case <-stop:
					return
				}
				continue
			}
			typ, payload, err := entry.Decode(uint64(p), data)
			if err != nil {
				b.Error(err)
				return
			}
			if typ == entry.TypeAfterimage {
				in, _, _, err := afterimage.DecodeHeader(payload)
				if err != nil {
					b.Error(err)
					return
				}
				f.Saw(uint64(p), in)
			}
			p++
		}
	}()
	slow.Store(true)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i, d := range deltas {
		if err := f.WaitRoom(ctx); err != nil { // as commits do
			b.Fatal(err)
		}
		f.Produced(d, true)
		deltas[i] = nil // the flusher holds it until it is confirmed
	}
	if err := f.Flush(ctx, last); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	close(stop)
	<-confirmerDone
	s := f.Stats()
	secs := b.Elapsed().Seconds()
	rate := float64(s.AfterimagesWritten) / secs
	ideal := float64(max(workers, 1)) / lat.Seconds()
	b.ReportMetric(rate, "afterimages/s")
	b.ReportMetric(float64(s.AfterimageBytes)/secs/1e6, "MB/s")
	if lat > 0 {
		b.ReportMetric(ideal, "ideal/s")
		b.ReportMetric(100*rate/ideal, "eff%")
	}
	if s.AfterimagesWritten > 0 {
		// CPU time of the whole process (flusher, log, confirmer, GC and
		// the log's waker) per afterimage: with 2 cores, 2 s/s over the
		// rate is a saturated machine.
		b.ReportMetric(float64(cpu.Microseconds())/float64(s.AfterimagesWritten), "cpu-µs/op")
		b.ReportMetric(cpu.Seconds()/secs, "cores")
	}
	if n := tl.n.Load(); n > 0 {
		b.ReportMetric(float64(tl.total.Load())/float64(n)/1e3, "append-µs")
	}
	if tot := s.PointersPhysical + s.PointersIntention; tot > 0 {
		b.ReportMetric(100*float64(s.PointersIntention)/float64(tot), "intention-ptr%")
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timedLog measures how long appends take, latency included.
type timedLog struct {
	log.Log
	total, n atomic.Int64
}

func (l *timedLog) Append(ctx context.Context, data []byte) (log.Position, error) {
	start := time.Now()
	p, err := l.Log.Append(ctx, data)
	l.total.Add(int64(time.Since(start)))
	l.n.Add(1)
	return p, err
}

// BenchmarkAppendEntry is the afterimage encoding of the commit
// experiment's deltas (BenchmarkApplyCommit in processor: one put, or a
// cruzd batch of 16, on a tree of 100K keys cut by a checkpoint) into a
// kept buffer, as the flusher encodes them; writes=148 is a cruzd combined
// transaction of redis-benchmark -P 16 -c 50 (about a thousand nodes).
func BenchmarkAppendEntry(b *testing.B) {
	for _, w := range []int{1, 16, 148} {
		b.Run(fmt.Sprintf("writes=%d/keys=100K", w), func(b *testing.B) {
			const keys = 100_000
			hdr := *entry.NewHeader(1<<20, 1<<14, 8<<20)
			var t cowtree.Tree
			d := t.Begin(1)
			val := make([]byte, 100)
			for i := range keys {
				d.Put(fmt.Appendf(nil, "key:%012d", i), val)
			}
			t, _, err := d.Finish()
			if err != nil {
				b.Fatal(err)
			}
			if t, err = t.Cut(2); err != nil {
				b.Fatal(err)
			}
			st := processor.NewState(hdr, t, 2)
			st.SetEpoch(2)
			r := rand.New(rand.NewPCG(20, 1))
			const n = 1024
			deltas := make([]*processor.Delta, n)
			for i := range deltas {
				in := &intention.Intention{Snapshot: uint64(i + 2)}
				for range w {
					in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: fmt.Appendf(nil, "key:%012d", r.IntN(keys)), Value: val})
				}
				dec, dl, err := st.Apply(uint64(i+3), in)
				if err != nil || dec.Outcome != processor.Committed {
					b.Fatalf("%v %v", dec.Outcome, err)
				}
				deltas[i] = dl
			}
			phys := func(p uint64) (uint64, bool) { return p + 1, p%2 == 0 }
			var buf []byte
			var bytes int
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				dl := deltas[i%n]
				buf, _ = AppendEntry(buf[:0], dl, dl.Pos, phys)
				bytes += len(buf)
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "entry-B/op")
		})
	}
}

// BenchmarkWriteImage is a checkpoint image of a tree of 100K keys of 17
// bytes with 100-byte values, built as cruzd builds it (transactions of
// 148 sorted puts of random keys, after which the nodes lie where path
// copying left them), encoded into chunks that are dropped. It reports the
// time per node of the image.
func BenchmarkWriteImage(b *testing.B) {
	const keys, writes = 100_000, 148
	hdr := *entry.NewHeader(1<<20, 1<<14, 8<<20)
	st := processor.NewState(hdr, cowtree.New(nil), 0)
	r := rand.New(rand.NewPCG(24, 1))
	val := make([]byte, 100)
	pos := uint64(1)
	for present := 0; present < keys*9/10; pos++ {
		ks := make([]string, writes)
		for i := range ks {
			ks[i] = fmt.Sprintf("skey:%012d", r.IntN(keys))
		}
		slices.Sort(ks)
		in := &intention.Intention{Snapshot: pos - 1}
		for _, k := range slices.Compact(ks) {
			in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: []byte(k), Value: val})
		}
		dec, d, err := st.Apply(pos, in)
		if err != nil || dec.Outcome != processor.Committed {
			b.Fatalf("%v %v", dec.Outcome, err)
		}
		n, err := d.Tree.Nodes()
		if err != nil {
			b.Fatal(err)
		}
		present = int(n)
	}
	d, err := st.Cut(pos)
	if err != nil {
		b.Fatal(err)
	}
	var w imageScratch
	b.ResetTimer()
	for range b.N {
		if err := w.write(d, func([]byte, uint64) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(d.ImageNodes), "ns/node")
}
