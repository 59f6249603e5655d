package suite

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// ycsb is one YCSB core workload's mix; what is left after reads and
// updates is read-modify-write.
type ycsb struct {
	name         string
	read, update float64
	desc         string
}

var ycsbWorkloads = []ycsb{
	{name: "A", read: 0.5, update: 0.5, desc: "50% read, 50% update"},
	{name: "B", read: 0.95, update: 0.05, desc: "95% read, 5% update"},
	{name: "C", read: 1, desc: "100% read"},
	{name: "F", read: 0.5, desc: "50% read, 50% read-modify-write"},
}

// zipfTheta is YCSB's default request distribution constant.
const zipfTheta = 0.99

// runWorkload: YCSB core workloads A, B, C, F over n records with a
// scrambled zipfian key chooser, closed-loop clients, durable writes.
func runWorkload(e *Env) error {
	n := pick(e, 100_000, 10_000, 1_000)
	clients := pick(e, 16, 16, 4)
	d := e.pick(3*time.Second, 300*time.Millisecond, 100*time.Millisecond)
	warm := e.pick(300*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond)
	z := newZipfian(uint64(n), zipfTheta)

	t := &Table{
		Name: "workload",
		Title: fmt.Sprintf("workload: YCSB-style, %s records, zipfian θ=%.2f, %d clients, durable writes (%s, %s per point, %d run(s))",
			humanInt(int64(n)), zipfTheta, clients, e.mode(), d, e.Runs),
		Columns: []string{"system", "workload", "ops/s", "p50 µs", "p99 µs", "gave up (conflicts)"},
	}
	steps := e.steps(len(systems) * len(ycsbWorkloads))
	rates := map[string][]float64{}
	for _, sys := range systems {
		db, cleanup, err := e.openLoaded(sys, n, kvOpts{Sync: true})
		if err != nil {
			return err
		}
		vals := newValues(e.Seed)
		for _, w := range ycsbWorkloads {
			steps.Step("%s, workload %s", sys.name, w.name)
			var last driveResult
			s, err := e.repeat(func() (float64, error) {
				r, err := drive(clients, warm, d, e.Seed, func(_ int, r *rand.Rand, _ uint64) error {
					k := makeKey(z.next(r))
					u := r.Float64()
					var err error
					switch {
					case u < w.read:
						_, err = db.Get(k)
					case u < w.read+w.update:
						err = db.Put(k, vals.get(r.Uint64()))
					default:
						nv := vals.get(r.Uint64())
						err = db.RMW(k, func([]byte) []byte { return nv })
					}
					if err != nil && isConflict(err) {
						return fmt.Errorf("%w: %w", errSoft, err)
					}
					return err
				})
				last = r
				return r.rate(), err
			})
			if err != nil {
				cleanup()
				return fmt.Errorf("%s workload %s: %w", sys.name, w.name, err)
			}
			rates[sys.name] = append(rates[sys.name], s.Median())
			t.Add(sys.name, w.name+" ("+w.desc+")", s, last.quantile(0.5), last.quantile(0.99), last.soft)
		}
		cleanup()
	}
	t.Note("update = a blind Put of a new 100 B value; read-modify-write = Get then Put in one transaction (cruzdb Update, bbolt Update, Badger Update with up to %d retries; Pebble has no transactions: Get then Set)", badgerRetries)
	t.Note("keys: Gray et al.'s zipfian generator (as YCSB's), ranks scrambled by FNV-1a over the record space; writes are durable (cruzdb fsync on, bbolt default, pebble.Sync, Badger SyncWrites)")
	t.Note("'gave up' counts operations that still conflicted after the store's retries (last run); they are not counted as ops")
	if err := e.Emit(t); err != nil {
		return err
	}
	var groups []string
	for _, w := range ycsbWorkloads {
		groups = append(groups, w.name)
	}
	var series []BarSeries
	for _, sys := range systems {
		series = append(series, BarSeries{Name: sys.name, Values: rates[sys.name]})
	}
	return e.BarPlot("workload", fmt.Sprintf("YCSB-style workloads, %d clients", clients), "ops/s", groups, series)
}
