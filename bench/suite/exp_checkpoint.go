package suite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
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
func runCheckpoint(e *Env) error {
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

// checkpointInside: a tree of n keys on memlog (automatic checkpoints off);
// 16 clients commit 1-put transactions for a window in which one checkpoint
// runs; commits that end while it runs are "inside".
func checkpointInside(e *Env) error {
	sizes := pick(e, []int{10_000, 100_000, 1_000_000}, []int{10_000}, []int{1_000})
	const clients = 16
	ctx := context.Background()
	t := &Table{
		Name:  "checkpoint_inside",
		Title: fmt.Sprintf("checkpoint: commits inside vs outside a checkpoint, and its duration, vs tree size (%s)", e.mode()),
		Columns: []string{"keys", "image nodes", "image bytes", "checkpoint ms", "prepare ms", "authority ms",
			"commits/s outside", "commits/s inside", "ratio", "p99 ms outside", "p99 ms inside", "p99 ratio", "target"},
	}
	steps := e.steps(len(sizes))
	vals := newValues(e.Seed)
	for _, n := range sizes {
		steps.Step("%s keys", humanInt(int64(n)))
		db, err := cruzdb.Open("", &cruzdb.Options{Log: memlog.New(nil), CheckpointLogRatio: -1, CacheBytes: builderCacheBytes})
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
		type commit struct{ end, took time.Duration }
		var mu sync.Mutex
		var commits []commit
		var stop atomic.Bool
		start := time.Now()
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(e.Seed, uint64(c)))
				var mine []commit
				for !stop.Load() {
					k := r.Uint64N(uint64(n))
					t0 := time.Now()
					if err := db.Update(ctx, func(tx *cruzdb.Txn) error { return tx.Put(makeKey(k), vals.get(k+1)) }); err != nil {
						continue
					}
					mine = append(mine, commit{end: time.Since(start), took: time.Since(t0)})
				}
				mu.Lock()
				commits = append(commits, mine...)
				mu.Unlock()
			}()
		}
		// Outside before, the checkpoint, outside after: each outside
		// stretch is as long as the checkpoint (at least half a second).
		time.Sleep(pick(e, time.Second, 300*time.Millisecond, 100*time.Millisecond))
		ckStart := time.Since(start)
		info, err := db.Checkpoint(ctx)
		ckEnd := time.Since(start)
		time.Sleep(max(ckEnd-ckStart, pick(e, time.Second, 300*time.Millisecond, 100*time.Millisecond)))
		stop.Store(true)
		wg.Wait()
		total := time.Since(start)
		db.Close()
		if err != nil {
			return err
		}
		var in, out []float64
		for _, c := range commits {
			if c.end >= ckStart && c.end <= ckEnd {
				in = append(in, float64(c.took)/1e6)
			} else {
				out = append(out, float64(c.took)/1e6)
			}
		}
		inDur, outDur := (ckEnd - ckStart).Seconds(), (total - (ckEnd - ckStart)).Seconds()
		inRate, outRate := float64(len(in))/inDur, float64(len(out))/outDur
		p99 := func(x []float64) float64 {
			if len(x) == 0 {
				return 0
			}
			slices.Sort(x)
			return x[min(len(x)-1, len(x)*99/100)]
		}
		pin, pout := p99(in), p99(out)
		met := inRate >= 0.8*outRate && pin <= 2*pout
		t.Add(n, info.Nodes, info.Bytes, float64(ckEnd-ckStart)/1e6, float64(info.Prepare)/1e6, float64(info.Authority)/1e6,
			outRate, inRate, inRate/outRate, pout, pin, pin/max(pout, 1e-9), fmt.Sprintf("≥ 0.8x, p99 ≤ 2x: %s", metStr(met)))
	}
	t.Note("memlog (no I/O), automatic checkpoints off, one db.Checkpoint in the middle of the window; %d clients committing 1-put transactions on random keys of the tree", clients)
	t.Note("inside: commits that ended between Checkpoint's call and its return (the cut's relocation on the processor, the image written in the background, the marker, the trim); outside: the rest of the window")
	return e.Emit(t)
}
