package suite

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"time"
)

// runRead: point reads and 100-key range scans on n loaded keys, warm and
// with a cache about a tenth of the data, GOMAXPROCS readers.
func runRead(e *Env) error {
	n := pick(e, 100_000, 10_000, 2_000)
	d := e.pick(2*time.Second, 300*time.Millisecond, 100*time.Millisecond)
	warm := e.pick(500*time.Millisecond, 100*time.Millisecond, 20*time.Millisecond)
	readers := runtime.GOMAXPROCS(0)
	const scanLen = 100
	small := max(int64(64<<10), int64(n*(keySize+valueSize)/10))

	t := &Table{
		Name: "read",
		Title: fmt.Sprintf("read: %s keys, %d readers, point Get and %d-key scans (%s, %s per point, %d run(s))",
			humanInt(int64(n)), readers, scanLen, e.mode(), d, e.Runs),
		Columns: []string{"system", "cache", "gets/s", "get p99 µs", "scans/s", "keys scanned/s"},
	}
	type mode struct {
		name  string
		bytes int64
	}
	modes := []mode{{"warm", 0}, {fmt.Sprintf("small %d KiB", small>>10), small}}
	steps := e.steps(len(modes) * len(systems))
	gets := map[string][]float64{}
	scans := map[string][]float64{}
	for _, m := range modes {
		for _, sys := range systems {
			steps.Step("%s, cache %s", sys.name, m.name)
			if m.bytes > 0 && sys.name == "bbolt" {
				t.Add(sys.name, m.name, "n/a", nil, "n/a", nil)
				gets[m.name] = append(gets[m.name], 0)
				scans[m.name] = append(scans[m.name], 0)
				continue
			}
			db, cleanup, err := e.openLoaded(sys, n, kvOpts{CacheBytes: m.bytes})
			if err != nil {
				return err
			}
			var lastGet driveResult
			g, err := e.repeat(func() (float64, error) {
				r, err := drive(readers, warm, d, e.Seed, func(_ int, r *rand.Rand, _ uint64) error {
					_, err := db.Get(makeKey(r.Uint64N(uint64(n))))
					return err
				})
				lastGet = r
				return r.rate(), err
			})
			if err != nil {
				cleanup()
				return fmt.Errorf("%s get: %w", sys.name, err)
			}
			var keysPerSec float64
			s, err := e.repeat(func() (float64, error) {
				got, calls := make([]uint64, readers), make([]uint64, readers)
				r, err := drive(readers, warm, d, e.Seed+1, func(c int, r *rand.Rand, _ uint64) error {
					k, err := db.Scan(makeKey(r.Uint64N(uint64(n))), scanLen)
					got[c] += uint64(k)
					calls[c]++
					return err
				})
				var keys, all uint64
				for i := range got {
					keys, all = keys+got[i], all+calls[i]
				}
				keysPerSec = r.rate() * float64(keys) / float64(max(all, 1))
				return r.rate(), err
			})
			if c, ok := db.(*cruzKV); ok {
				st := c.db.Stats()
				t.Note("cruzdb, cache %s, after the runs: CachedBytes %s, cache hits %s, misses %s, evictions %s",
					m.name, humanInt(st.CachedBytes), humanInt(int64(st.CacheHits)), humanInt(int64(st.CacheMisses)), humanInt(int64(st.Evictions)))
			}
			cleanup()
			if err != nil {
				return fmt.Errorf("%s scan: %w", sys.name, err)
			}
			gets[m.name] = append(gets[m.name], g.Median())
			scans[m.name] = append(scans[m.name], s.Median())
			t.Add(sys.name, m.name, g, lastGet.quantile(0.99), s, keysPerSec)
		}
	}
	t.Note("each store is loaded (not synced per key), closed and reopened, so LSM stores read from their tables; warm-up %s before each point", warm)
	t.Note("scans start at a random key (those near the end read fewer than %d keys); keys scanned/s is scans/s times the mean keys per scan (last run)", scanLen)
	for _, sys := range systems {
		t.Note("cache bound for %s: %s", sys.name, sys.cacheNote)
	}
	t.Note("bbolt's file and every store's files stay in the OS page cache (24 GiB machine): the small cache bounds the store's own cache, not the page cache")
	if err := e.Emit(t); err != nil {
		return err
	}
	var groups []string
	var series []BarSeries
	for _, m := range modes {
		short, _, _ := strings.Cut(m.name, " ")
		groups = append(groups, "get "+short, "scan "+short)
	}
	for i, sys := range systems {
		var v []float64
		for _, m := range modes {
			v = append(v, gets[m.name][i], scans[m.name][i])
		}
		series = append(series, BarSeries{Name: sys.name, Values: v})
	}
	return e.BarPlot("read", fmt.Sprintf("reads on %s keys (%d readers)", humanInt(int64(n)), readers), "ops/s", groups, series)
}
