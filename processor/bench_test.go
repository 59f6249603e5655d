package processor

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log/memlog"
)

func benchKey(i uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, i*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint64(k[8:], i)
	return k
}

var (
	baseTrees   = map[int]cowtree.Tree{}
	baseTreesMu sync.Mutex
)

// baseTree returns a tree of n keys (16 B keys, 100 B values) at position 1,
// built once per process: trees are immutable, so benchmarks share it.
func baseTree(b *testing.B, n int) cowtree.Tree {
	baseTreesMu.Lock()
	defer baseTreesMu.Unlock()
	if t, ok := baseTrees[n]; ok {
		return t
	}
	var t cowtree.Tree
	d := t.Begin(1)
	val := make([]byte, 100)
	for i := range n {
		d.Put(benchKey(uint64(i)), val)
	}
	t, _, err := d.Finish()
	if err != nil {
		b.Fatal(err)
	}
	baseTrees[n] = t
	runtime.GC()
	return t
}

// intentions makes n read-modify-write intentions of w keys each, at
// positions 2.., each reading the state just before it (no conflicts).
func intentions(n, w, keys int, seed uint64) []*intention.Intention {
	r := rand.New(rand.NewPCG(seed, 1))
	val := make([]byte, 100)
	out := make([]*intention.Intention, n)
	for i := range out {
		in := &intention.Intention{Snapshot: uint64(i + 1), Token: r.Uint64()}
		for range w {
			k := benchKey(r.Uint64N(uint64(keys)))
			in.Reads = append(in.Reads, k)
			in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: k, Value: val})
		}
		out[i] = in
	}
	return out
}

var header = entry.Header{FormatVersion: 1, ConflictWindow: 1 << 20, MaxKeySize: 1 << 14, MaxValueSize: 8 << 20}

// BenchmarkApply is the deterministic core alone (meld): conflict checks
// and path copying of decoded intentions into a tree of 1M keys.
func BenchmarkApply(b *testing.B) {
	for _, w := range []int{2, 8} {
		b.Run(fmt.Sprintf("writes=%d/keys=1M", w), func(b *testing.B) {
			tree := baseTree(b, 1<<20)
			ins := intentions(b.N, w, 1<<20, 7)
			st := NewState(header, tree, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for i, in := range ins {
				if d, _, err := st.Apply(uint64(i+2), in); err != nil || d.Outcome != Committed {
					b.Fatalf("%v %v", d.Outcome, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "intentions/s")
		})
	}
}

// BenchmarkReplay is replay end to end: the Runner reading encoded entries
// from a memlog, decoding them on its reader goroutine and applying them.
func BenchmarkReplay(b *testing.B) {
	for _, w := range []int{2, 8} {
		b.Run(fmt.Sprintf("writes=%d/keys=1M", w), func(b *testing.B) {
			tree := baseTree(b, 1<<20)
			l := memlog.New(nil)
			ctx := b.Context()
			l.Append(ctx, entry.EncodeHeader(&header))
			l.Append(ctx, entry.EncodeHeader(&header)) // position 1: the base tree's
			for _, in := range intentions(b.N, w, 1<<20, 7) {
				if _, err := l.Append(ctx, entry.AppendIntention(nil, in)); err != nil {
					b.Fatal(err)
				}
			}
			last := uint64(b.N + 1)
			done := make(chan struct{})
			var commits int
			b.ReportAllocs()
			b.ResetTimer()
			r, err := Start(Config{Log: l, State: NewState(header, tree, 1), OnEvent: func(ev Event) {
				if ev.Decision != nil && ev.Decision.Outcome == Committed {
					commits++
				}
				if ev.Pos == last {
					close(done)
				}
			}})
			if err != nil {
				b.Fatal(err)
			}
			<-done
			b.StopTimer()
			r.Stop()
			if commits != b.N {
				b.Fatalf("%d commits of %d", commits, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "intentions/s")
		})
	}
}

// BenchmarkApplyCommit is the apply of the commit experiment's transaction
// (one put of a 16-byte key and a 100-byte value, a read of the same key)
// on a tree of 100K keys just cut by a checkpoint, as a database's tree
// is after its first checkpoint: the processor's CPU per durable 1-put
// commit, apart from replay's reading. writes=16 is a cruzd batch (the
// combiner's 16 SETs in one intention).
func BenchmarkApplyCommit(b *testing.B) {
	for _, w := range []int{1, 16} {
		b.Run(fmt.Sprintf("writes=%d/keys=100K", w), func(b *testing.B) {
			const keys = 100_000
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
			r := rand.New(rand.NewPCG(20, 1))
			// A ring of intentions, each given its snapshot as it is
			// applied: a heap of b.N intentions would make the figure
			// mostly the collector's.
			ins := make([]*intention.Intention, 4096)
			for i := range ins {
				in := &intention.Intention{Token: uint64(i)}
				for range w {
					k := fmt.Appendf(nil, "key:%012d", r.IntN(keys))
					in.Reads = append(in.Reads, k)
					in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: k, Value: val})
				}
				ins[i] = in
			}
			st := NewState(header, t, 2)
			st.SetEpoch(2)
			runtime.GC()
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				in := ins[i%len(ins)]
				in.Snapshot = uint64(i + 2)
				if d, _, err := st.Apply(uint64(i+3), in); err != nil || d.Outcome != Committed {
					b.Fatalf("%v %v", d.Outcome, err)
				}
			}
			b.StopTimer()
			// The process's CPU time (the collector's included) per
			// intention: less sensitive than ns/op to other processes
			// on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
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

// BenchmarkApplySet is the apply of cruzd's combined SET transaction under
// redis-benchmark's pipelined SET (-c 50 -P 16 -r 100000 -d 100): one
// intention of 148 blind puts (no reads) of sorted, distinct 17-byte keys
// ("k" + "key:%012d", cruzd's string keys) with 101-byte values, on a tree
// just cut by a checkpoint. present=all: the tree holds all 100K keys, so
// every put replaces a value, and each intention applies to the tree the
// one before made; present=half: the tree holds every other key and each
// intention applies to it afresh, so half the puts insert (and rebalance).
// An op is one put; cpu-ns/op is the process's CPU time per put, the
// collector's included.
func BenchmarkApplySet(b *testing.B) {
	const keys, batch = 100_000, 148
	for _, bc := range []struct {
		name  string
		step  int
		fresh bool
	}{{"present=all", 1, false}, {"present=half", 2, true}} {
		b.Run(bc.name, func(b *testing.B) {
			key := func(i int) []byte { return fmt.Appendf(nil, "kkey:%012d", i) }
			val := make([]byte, 101)
			var t cowtree.Tree
			d := t.Begin(1)
			for i := 0; i < keys; i += bc.step {
				d.Put(key(i), val)
			}
			t, _, err := d.Finish()
			if err != nil {
				b.Fatal(err)
			}
			if t, err = t.Cut(2); err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(22, 1))
			ins := make([]*intention.Intention, 256)
			for i := range ins {
				picked := map[int]bool{}
				for len(picked) < batch {
					picked[r.IntN(keys)] = true
				}
				in := &intention.Intention{Token: uint64(i)}
				for _, k := range slices.Sorted(maps.Keys(picked)) {
					in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: key(k), Value: val})
				}
				ins[i] = in
			}
			st := NewState(header, t, 2)
			st.SetEpoch(2)
			runtime.GC()
			b.ReportAllocs()
			n := (b.N + batch - 1) / batch
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := range n {
				in := ins[i%len(ins)]
				in.Snapshot = uint64(i + 2)
				if bc.fresh {
					st, in.Snapshot = NewState(header, t, 2), 2
					st.SetEpoch(2)
				}
				if d, _, err := st.Apply(st.Pos()+1, in); err != nil || d.Outcome != Committed {
					b.Fatalf("%v %v", d.Outcome, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(n*batch), "cpu-ns/op")
		})
	}
}
