package suite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log/boltlog"
)

// startupTarget is issue 5's bound on open time with a recent safe point.
const startupTarget = 100 * time.Millisecond

// runStartup: open time and log reads of cruzdb.Open on the embedded bbolt
// log vs the number of intentions in the log's history. One log grows
// through the history lengths; after each, the builder closes and a fresh
// Open is timed through a counting wrapper.
func runStartup(e *Env) error {
	hist := pick(e, []int{10_000, 100_000, 1_000_000}, []int{10_000}, []int{2_000})
	keys := pick(e, 100_000, 10_000, 1_000)
	ctx := context.Background()
	dir, cleanup, err := e.tempDir("startup")
	if err != nil {
		return err
	}
	defer cleanup()
	path := filepath.Join(dir, cruzdb.LogFileName)
	t := &Table{
		Name:  "startup",
		Title: fmt.Sprintf("startup: cruzdb.Open on the embedded log vs history length (%s, %d run(s))", e.mode(), e.Runs),
		Columns: []string{"intentions in history", "log entries", "open ms", "log reads", "reads / entry",
			"reads of intentions / afterimages / other", "bytes read", "fills", "ratio to first", "target"},
	}
	steps := e.steps(len(hist))
	vals := newValues(e.Seed)
	have := 0
	var first float64
	var xs, ys, rs []float64
	for _, h := range hist {
		steps.Step("history %s intentions: build", humanInt(int64(h)))
		bl, err := boltlog.Open(path, &boltlog.Options{NoSync: true})
		if err != nil {
			return err
		}
		db, err := cruzdb.Open("", &cruzdb.Options{Log: bl, CacheBytes: builderCacheBytes})
		if err != nil {
			bl.Close()
			return err
		}
		err = parallel(64, h-have, e.Seed+uint64(h), func(r *rand.Rand, _ int) error {
			k := r.Uint64N(uint64(keys))
			return db.Update(ctx, func(tx *cruzdb.Txn) error { return tx.Put(makeKey(k), vals.get(k)) })
		})
		if err == nil {
			err = db.Flush(ctx)
		}
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if cerr := bl.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("build %d: %w", h, err)
		}
		have = h

		var last logCounts
		var entries uint64
		s, err := e.repeat(func() (float64, error) {
			bl, err := boltlog.Open(path, nil)
			if err != nil {
				return 0, err
			}
			defer bl.Close()
			tail, err := bl.Tail(ctx)
			if err != nil {
				return 0, err
			}
			entries = uint64(tail)
			cl := newCountingLog(bl)
			start := time.Now()
			db, err := cruzdb.Open("", &cruzdb.Options{Log: cl})
			el := time.Since(start)
			if err != nil {
				return 0, err
			}
			last = cl.counts()
			return float64(el) / 1e6, db.Close()
		})
		if err != nil {
			return fmt.Errorf("open at %d: %w", h, err)
		}
		if first == 0 {
			first = s.Median()
		}
		t.Add(h, entries, s, last.reads, float64(last.reads)/float64(entries),
			fmt.Sprintf("%s / %s / %s", humanInt(int64(last.readKinds[kindIntention])), humanInt(int64(last.readKinds[kindAfterimage])),
				humanInt(int64(last.reads-last.readKinds[kindIntention]-last.readKinds[kindAfterimage]))),
			last.readB, last.fills,
			s.Median()/first, fmt.Sprintf("≤ %d ms, ≤ 1.2x of 10K: %s", startupTarget.Milliseconds(),
				metStr(s.Median() <= float64(startupTarget.Milliseconds()) && s.Median() <= 1.2*first)))
		xs = append(xs, float64(h))
		ys = append(ys, s.Median())
		rs = append(rs, float64(last.reads))
	}
	t.Note("each intention is one Put of a 16 B key (of %s) and a 100 B value, from 64 clients; the builder's log is written without fsync, the timed Open's log is opened with defaults", humanInt(int64(keys)))
	t.Note("open ms is cruzdb.Open alone (boltlog.Open is not timed); log reads are Read calls through a counting wrapper, bytes read their sizes (last run); the file is in the OS page cache")
	t.Note("the builder runs with CacheBytes %d GiB (%s); the timed Open uses the defaults", builderCacheBytes>>30, builderCacheWhy)
	t.Note("Open uses whatever startup the engine has: a full replay before issue 5, the safe-point startup after it; 'other' reads are the header, junk and not-written answers")
	if err := e.Emit(t); err != nil {
		return err
	}
	return e.LinePlot("startup", "open time and log reads vs history", "intentions in history", "ms / reads",
		true, true, []Series{
			{Name: "open ms", X: xs, Y: ys},
			{Name: "log reads", X: xs, Y: rs},
			{Name: "target 100 ms", X: []float64{xs[0], xs[len(xs)-1] * 1.01}, Y: []float64{100, 100}, Dashed: true},
		})
}
