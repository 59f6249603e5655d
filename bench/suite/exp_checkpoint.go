package suite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// runCheckpoint measures issue 19's checkpoints: (1) the live log and the
// data directory's size over time under a uniform overwrite with default
// options; (2) commit throughput and p99 latency inside a checkpoint against
// outside it, and the checkpoint's duration, for several tree sizes.
// With Config.InsideKeys set, only (2) runs, for those sizes.
func runCheckpoint(e *Env) error {
	if len(e.InsideKeys) > 0 {
		return checkpointInside(e)
	}
	if err := checkpointGrowth(e); err != nil {
		return err
	}
	return checkpointInside(e)
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// checkpointGrowth: rounds of 100-byte overwrites over 1,000 keys, on the
// embedded log (seglog, no fsync) with default options: the live log bytes
// (Stats.LogLiveBytes) and the directory's size after every round.
func checkpointGrowth(e *Env) error {
	rounds := pick(e, 10, 5, 3)
	puts := pick(e, 100_000, 20_000, 2_000)
	const keys, perTxn = 1000, 100
	dir, cleanup, err := e.tempDir("checkpoint")
	if err != nil {
		return err
	}
	defer cleanup()
	db, err := cruzdb.Open(dir, &cruzdb.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	t := &Table{
		Name:  "checkpoint",
		Title: fmt.Sprintf("checkpoint: live log and data directory under uniform overwrite, default options (%s)", e.mode()),
		Columns: []string{"round", "puts so far", "live log bytes", "directory bytes", "checkpoints", "trimmed below",
			"commits held", "last prepare ms", "last authority ms"},
	}
	r := rand.New(rand.NewPCG(e.Seed, 19))
	val := make([]byte, 100)
	var xs, live, disk []float64
	steps := e.steps(rounds)
	for round := 1; round <= rounds; round++ {
		steps.Step("round %d", round)
		for i := 0; i < puts/perTxn; i++ {
			err := db.Update(ctx, func(tx *cruzdb.Txn) error {
				for range perTxn {
					for j := range val {
						val[j] = byte('a' + r.IntN(26))
					}
					if err := tx.Put(makeKey(r.Uint64N(keys)), val); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if i%(puts/perTxn/10) == 0 {
				st := db.Stats()
				xs = append(xs, float64((round-1)*puts+i*perTxn))
				live = append(live, float64(st.LogLiveBytes))
				disk = append(disk, float64(dirSize(dir)))
			}
		}
		st := db.Stats()
		t.Add(round, round*puts, st.LogLiveBytes, dirSize(dir), st.Checkpoints, uint64(st.TrimmedBelow), st.CheckpointWaits,
			float64(st.CheckpointPrepare)/1e6, float64(st.CheckpointAuthority)/1e6)
	}
	t.Note("%d keys (16 B), 100-byte random values, %d puts a transaction, one client; the embedded log (seglog) without fsync", keys, perTxn)
	t.Note("live log bytes: Stats.LogLiveBytes, the entries at or above the trim point this DB replayed; directory bytes: the files of the data directory (seglog deletes whole segments below the trim point)")
	if err := e.Emit(t); err != nil {
		return err
	}
	return e.LinePlot("checkpoint", "live log and directory size under uniform overwrite", "puts", "bytes", false, false, []Series{
		{Name: "live log bytes", X: xs, Y: live},
		{Name: "directory bytes", X: xs, Y: disk},
	})
}

// checkpointInside: a tree of n keys (automatic checkpoints off); 16
// clients commit 1-put transactions for a window in which checkpoints run
// one after another, each followed by an outside stretch as long as it;
// commits that end while one runs are "inside" it, those of the stretches
// before and after it "outside". The first stretch begins once the heap
// settled after the bulk load (settleHeap): before that, the commits pay
// for the heap's growth into fresh pages, which is neither the
// checkpoint's cost nor steady state. A row per checkpoint: the first after
// a bulk load is the slowest (its pinned cut grows the heap past any size
// it had: page faults on the commit path). Each size runs on
// the embedded log (seglog) without fsync, so that commits are bound by CPU
// as the image writer's work is, and on memlog, which keeps the whole log
// in the Go heap: its image lands in fresh heap pages (page faults and
// zeroing, memmove and memclr in a profile), a cost no deployed log puts on
// the database's process.
func checkpointInside(e *Env) error {
	sizes := pick(e, []int{10_000, 100_000, 1_000_000}, []int{10_000}, []int{1_000})
	if len(e.InsideKeys) > 0 {
		sizes = e.InsideKeys
	}
	checkpoints := pick(e, 3, 2, 1)
	const clients = 16
	t := &Table{
		Name:  "checkpoint_inside",
		Title: fmt.Sprintf("checkpoint: commits inside vs outside a checkpoint, and its duration, vs tree size (%s)", e.mode()),
		Columns: []string{"keys", "log", "warm-up s", "checkpoint", "image nodes", "image bytes", "checkpoint ms", "prepare ms", "authority ms",
			"commits/s before", "commits/s after", "commits/s inside", "ratio", "ratio to before", "p99 ms outside", "p99 ms inside", "p99 ratio", "target"},
	}
	cpu := &Table{
		Name:    "checkpoint_inside_cpu",
		Title:   fmt.Sprintf("checkpoint: the Go runtime's CPU and GC by stretch of the inside-vs-outside runs (%s)", e.mode()),
		Columns: append([]string{"keys", "log", "stretch", "commits/s", "CPU µs/commit"}, cpuColumns...),
	}
	logs := []string{"seglog", "memlog"}
	if len(e.InsideLogs) > 0 {
		logs = e.InsideLogs
	}
	steps := e.steps(len(sizes) * len(logs))
	vals := newValues(e.Seed)
	for _, n := range sizes {
		for _, logName := range logs {
			steps.Step("%s keys, %s", humanInt(int64(n)), logName)
			if err := checkpointInsideOne(e, t, cpu, vals, n, logName, checkpoints, clients); err != nil {
				return err
			}
		}
	}
	t.Note("seglog: the embedded log, without fsync (commits bound by CPU, as the image writer is); memlog: no I/O, the log in the Go heap. Automatic checkpoints off; %d clients committing 1-put transactions on random keys of the tree; %d db.Checkpoint calls one after another, each followed by an outside stretch as long as it", clients, checkpoints)
	t.Note("inside: commits that ended between Checkpoint's call and its return (the cut's relocation on the processor, the image written in the background, the marker, the trim); outside: the stretches before it (for the first, %s after a warm-up that runs, at most 30 s, until the Go heap's resident size stops growing and two GC cycles have ended) and after it (as long as it, until the next checkpoint); ratio: inside ÷ outside (both stretches), the target's; ratio to before: inside ÷ the stretch before alone", pick(e, firstOut, firstOutQuick, firstOutTiny))
	if err := e.Emit(t); err != nil {
		return err
	}
	cpu.Note("a wall second: the process's CPU (getrusage), the GC's (runtime/metrics' estimate, updated at the end of each cycle, so coarse over a stretch with few; assist: the share that allocating goroutines did); warm-up: from the clients' start until the heap settles; outside 1: the stretch after it")
	return e.Emit(cpu)
}

// firstOut is the outside stretch before the first checkpoint: longer than
// the GC cycles of a 1M-key heap (1.5-2 s apart), so that it holds one as
// the checkpoint does.
const (
	firstOut      = 3 * time.Second
	firstOutQuick = 300 * time.Millisecond
	firstOutTiny  = 100 * time.Millisecond
)

// checkpointInsideOne adds the rows of one tree size on one log to t, and
// the CPU of its stretches to cpu.
func checkpointInsideOne(e *Env, t, cpu *Table, vals *values, n int, logName string, checkpoints, clients int) error {
	ctx := context.Background()
	opts := &cruzdb.Options{CheckpointLogRatio: -1, CacheBytes: builderCacheBytes}
	dir := ""
	if logName == "memlog" {
		opts.Log = memlog.New(nil)
	} else {
		opts.NoSync = true
		d, cleanup, err := e.tempDir("checkpoint-inside")
		if err != nil {
			return err
		}
		defer cleanup()
		dir = d
	}
	{
		db, err := cruzdb.Open(dir, opts)
		if err != nil {
			return err
		}
		for i := 0; i < n; i += 1000 {
			err := db.Update(ctx, func(tx *cruzdb.Txn) error {
				for k := i; k < min(n, i+1000); k++ {
					if err := tx.Put(makeKey(uint64(k)), vals.get(uint64(k))); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				db.Close()
				return err
			}
		}
		if err := db.Flush(ctx); err != nil {
			db.Close()
			return err
		}
		var mu sync.Mutex
		var commits []timedCommit
		var stop atomic.Bool
		start := time.Now()
		marks := []cpuMark{readCPUMark(start)}
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(e.Seed, uint64(c)))
				var mine []timedCommit
				for !stop.Load() {
					k := r.Uint64N(uint64(n))
					t0 := time.Now()
					if err := db.Update(ctx, func(tx *cruzdb.Txn) error { return tx.Put(makeKey(k), vals.get(k+1)) }); err != nil {
						continue
					}
					mine = append(mine, timedCommit{end: time.Since(start), took: time.Since(t0)})
				}
				mu.Lock()
				commits = append(commits, mine...)
				mu.Unlock()
			}()
		}
		// Outside, a checkpoint, outside, ...: each outside stretch is as
		// long as the checkpoint before it (the first one firstOut).
		type window struct {
			from, to time.Duration
			info     cruzdb.CheckpointInfo
		}
		minOut := pick(e, time.Second, 300*time.Millisecond, 100*time.Millisecond)
		// Warm up until the heap stops growing: after the bulk load it
		// grows for seconds towards the GC's goal, and every new span is
		// fresh memory (a first touch costs ~12 µs on this VM), a cost
		// that belongs to neither the checkpoint nor the stretch outside.
		warmed := settleHeap(pick(e, 30*time.Second, 3*time.Second, 0))
		marks = append(marks, readCPUMark(start))
		time.Sleep(pick(e, firstOut, firstOutQuick, firstOutTiny))
		var wins []window
		for k := range checkpoints {
			stopProf := e.startProfile(fmt.Sprintf("%d-%s-ckpt%d", n, logName, k+1))
			marks = append(marks, readCPUMark(start))
			w := window{from: marks[len(marks)-1].at}
			w.info, err = db.Checkpoint(ctx)
			marks = append(marks, readCPUMark(start))
			stopProf()
			if err != nil {
				break
			}
			w.to = marks[len(marks)-1].at
			wins = append(wins, w)
			stopProf = e.startProfile(fmt.Sprintf("%d-%s-after%d", n, logName, k+1))
			time.Sleep(max(w.to-w.from, minOut))
			stopProf()
		}
		marks = append(marks, readCPUMark(start))
		stop.Store(true)
		wg.Wait()
		db.Close()
		if err != nil {
			return err
		}
		p99 := func(x []float64) float64 {
			if len(x) == 0 {
				return 0
			}
			slices.Sort(x)
			return x[min(len(x)-1, len(x)*99/100)]
		}
		// The stretches between marks: warm-up, outside 1, checkpoint 1,
		// outside 2, ...
		for i := 1; i < len(marks); i++ {
			name := "warm-up"
			switch {
			case i > 1 && i%2 == 0:
				name = fmt.Sprintf("outside %d", i/2)
			case i > 1:
				name = fmt.Sprintf("checkpoint %d", i/2)
			}
			ncommits := 0
			for _, c := range commits {
				if c.end >= marks[i-1].at && c.end < marks[i].at {
					ncommits++
				}
			}
			cpu.Add(append([]any{n, logName, name, float64(ncommits) / (marks[i].at - marks[i-1].at).Seconds(),
				(marks[i].proc - marks[i-1].proc) / float64(max(ncommits, 1)) * 1e6}, cpuCells(marks[i-1], marks[i])...)...)
		}
		// Outside checkpoint i: the stretch before it (from the warm-up's
		// end for the first) and the one after it (to the next checkpoint,
		// or the end).
		bounds := []time.Duration{marks[1].at}
		for _, w := range wins {
			bounds = append(bounds, w.from, w.to)
		}
		bounds = append(bounds, marks[len(marks)-1].at)
		for i, s := range splitStretches(commits, bounds) {
			w := wins[i]
			inRate, beforeRate, afterRate := s.in.rate(), s.before.rate(), s.after.rate()
			outRate := float64(len(s.before.ms)+len(s.after.ms)) / (s.before.secs + s.after.secs)
			pin, pout := p99(s.in.ms), p99(append(s.before.ms, s.after.ms...))
			met := inRate >= 0.8*outRate && pin <= 2*pout
			t.Add(n, logName, warmed.Seconds(), i+1, w.info.Nodes, w.info.Bytes, float64(w.to-w.from)/1e6, float64(w.info.Prepare)/1e6, float64(w.info.Authority)/1e6,
				beforeRate, afterRate, inRate, inRate/outRate, inRate/beforeRate, pout, pin, pin/max(pout, 1e-9), fmt.Sprintf("≥ 0.8x, p99 ≤ 2x: %s", metStr(met)))
		}
	}
	return nil
}

// timedCommit is a commit of the inside-vs-outside run: when it ended
// (since the clients' start) and how long it took.
type timedCommit struct{ end, took time.Duration }

// stretch is the commits that ended in a stretch of a run: their
// latencies in ms, and the stretch's length in seconds.
type stretch struct {
	ms   []float64
	secs float64
}

func (s stretch) rate() float64 { return float64(len(s.ms)) / max(s.secs, 1e-9) }

// checkpointStretches are a checkpoint's stretches: inside it, and
// outside it before and after.
type checkpointStretches struct{ before, in, after stretch }

// splitStretches sorts commits into the stretches of each checkpoint,
// given bounds: the start of the first outside stretch, then each
// checkpoint's start and end, then the end of the last outside stretch.
// Checkpoint i is [bounds[2i+1], bounds[2i+2]); outside it, before is
// [bounds[2i], bounds[2i+1]) and after [bounds[2i+2], bounds[2i+3]), so the
// stretch between two checkpoints is after the first and before the next.
// Commits outside [bounds[0], bounds[last]) count nowhere.
func splitStretches(commits []timedCommit, bounds []time.Duration) []checkpointStretches {
	n := (len(bounds) - 2) / 2
	if n <= 0 {
		return nil
	}
	out := make([]checkpointStretches, n)
	for i := range out {
		a, from, to, b := bounds[2*i], bounds[2*i+1], bounds[2*i+2], bounds[2*i+3]
		out[i].before.secs, out[i].in.secs, out[i].after.secs = (from - a).Seconds(), (to - from).Seconds(), (b - to).Seconds()
	}
	for _, c := range commits {
		k := sort.Search(len(bounds), func(j int) bool { return bounds[j] > c.end }) - 1
		if k < 0 || k >= len(bounds)-1 {
			continue
		}
		ms := float64(c.took) / 1e6
		if k%2 == 1 {
			out[k/2].in.ms = append(out[k/2].in.ms, ms)
			continue
		}
		if i := k / 2; i < n {
			out[i].before.ms = append(out[i].before.ms, ms)
		}
		if i := k/2 - 1; i >= 0 {
			out[i].after.ms = append(out[i].after.ms, ms)
		}
	}
	return out
}

// startProfile starts a CPU profile to Config.InsideProfile-name.prof (if
// set) and returns what stops it; a profile that cannot start is skipped.
func (e *Env) startProfile(name string) func() {
	if e.InsideProfile == "" {
		return func() {}
	}
	f, err := os.Create(e.InsideProfile + "-" + name + ".prof")
	if err != nil {
		e.progressf("profile %s: %v", name, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		e.progressf("profile %s: %v", name, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// settleHeap waits, at most limit, until the Go heap's resident size
// (HeapSys less what the scavenger returned to the OS) grows by less than
// 1 % over half a second and at least two GC cycles have ended since it was
// called, and returns how long it waited. HeapSys alone keeps the pages
// the scavenger returned: after an earlier, larger run in the same process
// it stops growing at once while the heap still faults its pages back in.
// Two cycles: the heap grows towards a GC's goal and settles only once a
// cycle has ended at it; half a second between two cycles of a large heap
// (1.5-2 s apart at 1M keys) shows no growth.
func settleHeap(limit time.Duration) time.Duration {
	start := time.Now()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	cycles := m.NumGC
	last := m.HeapSys - m.HeapReleased
	for time.Since(start) < limit {
		time.Sleep(500 * time.Millisecond)
		runtime.ReadMemStats(&m)
		resident := m.HeapSys - m.HeapReleased
		if resident < last+last/100 && m.NumGC >= cycles+2 {
			break
		}
		last = resident
	}
	return time.Since(start)
}
