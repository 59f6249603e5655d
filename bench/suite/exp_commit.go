package suite

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// runCommit: durable transactions of one put (16 B key, 100 B value) with
// 1, 16 and 64 closed-loop clients, on cruzdb's embedded log with fsync and
// on bbolt, Pebble and Badger doing the same writes; plus the machine's
// fdatasync line.
func runCommit(e *Env) error {
	clients := pick(e, []int{1, 16, 64}, []int{1, 16, 64}, []int{1, 4})
	d := e.pick(3*time.Second, 300*time.Millisecond, 100*time.Millisecond)
	warm := e.pick(300*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond)

	t := &Table{
		Name:    "commit",
		Title:   fmt.Sprintf("commit: durable 1-put transactions (%s, %s per point, %d run(s))", e.mode(), d, e.Runs),
		Columns: []string{"system", "clients", "txns/s", "p50 µs", "p99 µs", "÷ fdatasync/s"},
	}
	steps := e.steps(1 + len(systems)*len(clients))

	steps.Step("fdatasync loop")
	fs, err := e.repeat(func() (float64, error) {
		n, el, err := fsyncLoop(e.DataDir, d)
		return float64(n) / el.Seconds(), err
	})
	if err != nil {
		return err
	}
	t.Add("4 KiB overwrite + fdatasync", 1, fs, 1e6/fs.Median(), nil, 1.0)

	rates := map[string][]float64{}
	for _, sys := range systems {
		dir, cleanup, err := e.tempDir(sys.name)
		if err != nil {
			return err
		}
		db, err := sys.open(dir, kvOpts{Sync: true})
		if err != nil {
			cleanup()
			return fmt.Errorf("open %s: %w", sys.name, err)
		}
		vals := newValues(e.Seed)
		for _, c := range clients {
			steps.Step("%s, %d clients", sys.name, c)
			var last driveResult
			s, err := e.repeat(func() (float64, error) {
				r, err := drive(c, warm, d, e.Seed, func(_ int, r *rand.Rand, _ uint64) error {
					k := r.Uint64()
					return db.Put(makeKey(k%1e15), vals.get(k))
				})
				last = r
				return r.rate(), err
			})
			if err != nil {
				db.Close()
				cleanup()
				return fmt.Errorf("%s with %d clients: %w", sys.name, c, err)
			}
			rates[sys.name] = append(rates[sys.name], s.Median())
			var vsSync any
			if c == 1 {
				vsSync = s.Median() / fs.Median()
			}
			t.Add(sys.name, c, s, last.quantile(0.5), last.quantile(0.99), vsSync)
		}
		if err := db.Close(); err != nil {
			cleanup()
			return fmt.Errorf("close %s: %w", sys.name, err)
		}
		cleanup()
	}
	for i, c := range clients {
		cz := rates["cruzdb"][i]
		var parts []string
		for _, sys := range systems[1:] {
			parts = append(parts, fmt.Sprintf("%.2fx %s", cz/rates[sys.name][i], sys.name))
		}
		t.Note("%d client(s): cruzdb = %s", c, strings.Join(parts, ", "))
	}
	t.Note("cruzdb: embedded log (seglog, the default; group commit), Update with one Put; bbolt: one Update per txn; Pebble: Set with pebble.Sync; Badger: Update with SyncWrites=true")
	t.Note("latency quantiles are from the last run; keys are random over 10^15, so every write inserts a new key")
	if err := e.Emit(t); err != nil {
		return err
	}
	var series []Series
	xs := make([]float64, len(clients))
	for i, c := range clients {
		xs[i] = float64(c)
	}
	for _, sys := range systems {
		series = append(series, Series{Name: sys.name, X: xs, Y: rates[sys.name]})
	}
	series = append(series, Series{Name: "4 KiB overwrite + fdatasync, 1 client", X: []float64{xs[0], xs[len(xs)-1]},
		Y: []float64{fs.Median(), fs.Median()}, Dashed: true})
	return e.LinePlot("commit", "durable 1-put transactions/s", "clients", "txns/s", true, true, series)
}
