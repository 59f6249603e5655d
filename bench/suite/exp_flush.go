package suite

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/boltlog"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// flushConfig is one point of the flush sweep.
type flushConfig struct {
	backend string        // "memlog" or "boltlog"
	latency time.Duration // memlog's AppendLatency
	serial  bool
	workers int
}

func (c flushConfig) String() string {
	mode := fmt.Sprintf("parallel, %d workers", c.workers)
	if c.serial {
		mode = "serial"
	}
	if c.backend == "boltlog" {
		return "boltlog, " + mode
	}
	return fmt.Sprintf("memlog %s, %s", c.latency, mode)
}

// ideal is the workers/latency line (serial: 1/latency); NaN without
// injected latency.
func (c flushConfig) ideal() float64 {
	if c.backend != "memlog" || c.latency == 0 {
		return math.NaN()
	}
	w := c.workers
	if c.serial {
		w = 1
	}
	return float64(w) / c.latency.Seconds()
}

// flushResult is what one point measured.
type flushResult struct {
	afterimages, commits float64 // per second
	mbps                 float64 // afterimage MB/s appended
	intentionLat         time.Duration
	afterimageLat        time.Duration
	unflushed            int64
	physical, intention  uint64 // child pointers written, by kind
	backpressure         uint64 // commits that waited for the flusher
}

// flushMaxUnflushed is the flush budget during the sweep: small enough that
// Close drains the backlog in seconds even at 1/latency, large enough to
// absorb bursts.
const flushMaxUnflushed = 4 << 20

// runFlush: afterimages/s written by the flusher, serial and parallel,
// sweeping workers and memlog's injected append latency, and on boltlog
// without injection, under a closed loop of writers committing one put each.
func runFlush(e *Env) error {
	lats := pick(e, []time.Duration{0, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond},
		[]time.Duration{time.Millisecond}, []time.Duration{time.Millisecond})
	workers := pick(e, []int{1, 2, 4, 8, 16, 32, 64, 128, 256}, []int{1, 16, 64}, []int{16})
	boltWorkers := pick(e, []int{1, 16, 64, 256}, []int{16}, []int{16})
	d := e.pick(2*time.Second, 300*time.Millisecond, 100*time.Millisecond)
	warm := e.pick(300*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond)
	clients := pick(e, 256, 64, 16)

	var configs []flushConfig
	for _, l := range lats {
		configs = append(configs, flushConfig{backend: "memlog", latency: l, serial: true, workers: 1})
		for _, w := range workers {
			configs = append(configs, flushConfig{backend: "memlog", latency: l, workers: w})
		}
	}
	configs = append(configs, flushConfig{backend: "boltlog", serial: true, workers: 1})
	for _, w := range boltWorkers {
		configs = append(configs, flushConfig{backend: "boltlog", workers: w})
	}

	t := &Table{
		Name: "flush",
		Title: fmt.Sprintf("flush: afterimages/s under %d writers (%s, %s per point, %d run(s))",
			clients, e.mode(), d, e.Runs),
		Columns: []string{"log", "latency", "mode", "workers", "ideal/s", "afterimages/s", "% of ideal",
			"MB/s", "commits/s", "pointers physical / intention", "backpressure waits", "intention append µs",
			"afterimage append µs", "unflushed KiB at end"},
	}

	// Probe: without the flusher (issue 4), nothing is written.
	e.progressf("probe: is there a flusher?")
	probe, err := e.flushOne(flushConfig{backend: "memlog", workers: 8}, min(clients, 16), 0, e.pick(500*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	available := probe.afterimages > 0
	if !available {
		t.Title += " — flusher not available"
		t.Note("**flusher not available**: Stats.AfterimagesWritten stayed 0 and no afterimage reached the log during a probe (%.0f commits/s); the flusher is issue 4. Only the ideal line is shown.", probe.commits)
	}

	steps := e.steps(len(configs))
	measured := make([]float64, len(configs))
	for i, c := range configs {
		mode := "parallel"
		if c.serial {
			mode = "serial"
		}
		latS := "—"
		if c.backend == "memlog" {
			latS = c.latency.String()
		}
		if !available {
			t.Add(c.backend, latS, mode, c.workers, c.ideal(), "flusher not available")
			measured[i] = math.NaN()
			continue
		}
		steps.Step("%s", c)
		var last flushResult
		s, err := e.repeatN(3, func() ([]float64, error) {
			r, err := e.flushOne(c, clients, warm, d)
			last = r
			return []float64{r.afterimages, r.mbps, r.commits}, err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		measured[i] = s[0].Median()
		pct := any(nil)
		if id := c.ideal(); !math.IsNaN(id) {
			pct = 100 * s[0].Median() / id
		}
		t.Add(c.backend, latS, mode, c.workers, c.ideal(), s[0], pct, s[1], s[2],
			fmt.Sprintf("%s / %s", humanInt(int64(last.physical)), humanInt(int64(last.intention))),
			last.backpressure, float64(last.intentionLat)/1e3, float64(last.afterimageLat)/1e3, float64(last.unflushed)/1024)
	}
	t.Note("writers: %d closed-loop clients, each an Update of one Put (16 B key among 100K, 100 B value); MaxUnflushedBytes %d MiB", clients, flushMaxUnflushed>>20)
	t.Note("ideal = workers / injected latency (serial: 1 / latency); issue 4's target: parallel ≥ 80%% of ideal up to 64 workers, ≥ 50x serial at 1 ms")
	t.Note("append µs columns are the mean time of Append calls as a log wrapper saw them (memlog adds the injected latency to every append, intentions included); MB/s is Stats.AfterimageBytes")
	t.Note("pointer kinds, backpressure waits and unflushed bytes are Stats deltas of the measured interval (last run)")
	if err := e.Emit(t); err != nil {
		return err
	}

	var series []Series
	for _, l := range lats {
		if l == 0 {
			continue
		}
		var meas, ideal Series
		meas.Name = fmt.Sprintf("measured, %s", l)
		ideal.Name = fmt.Sprintf("ideal W/L, %s", l)
		ideal.Dashed = true
		for i, c := range configs {
			if c.backend != "memlog" || c.latency != l || c.serial {
				continue
			}
			meas.X = append(meas.X, float64(c.workers))
			meas.Y = append(meas.Y, measured[i])
			ideal.X = append(ideal.X, float64(c.workers))
			ideal.Y = append(ideal.Y, c.ideal())
		}
		series = append(series, meas, ideal)
	}
	title := "parallel flush on memlog vs workers"
	if !available {
		title += " (flusher not available: ideal only)"
	}
	return e.LinePlot("flush", title, "flush workers", "afterimages/s", true, true, series)
}

// flushOne runs one configuration: opens a DB on the configured log, runs
// clients writers for warm+d, and reads the counters over d.
func (e *Env) flushOne(c flushConfig, clients int, warm, d time.Duration) (flushResult, error) {
	ctx := context.Background()
	var l log.Log
	switch c.backend {
	case "memlog":
		l = memlog.New(&memlog.Options{AppendLatency: c.latency})
	case "boltlog":
		dir, cleanup, err := e.tempDir("flush")
		if err != nil {
			return flushResult{}, err
		}
		defer cleanup()
		bl, err := boltlog.Open(filepath.Join(dir, cruzdb.LogFileName), nil)
		if err != nil {
			return flushResult{}, err
		}
		l = bl
	default:
		return flushResult{}, fmt.Errorf("unknown backend %q", c.backend)
	}
	defer l.Close()
	cl := newCountingLog(l)
	opts := cruzdb.DefaultOptions()
	opts.Log = cl
	opts.FlushWorkers = c.workers
	opts.FlushSerial = c.serial
	opts.MaxUnflushedBytes = flushMaxUnflushed
	db, err := cruzdb.Open("", &opts)
	if err != nil {
		return flushResult{}, err
	}
	vals := newValues(e.Seed)
	type snap struct {
		st  cruzdb.Stats
		log logCounts
		t   time.Time
	}
	var s0, s1 snap
	take := func() snap { return snap{db.Stats(), cl.counts(), time.Now()} }
	done := make(chan struct{})
	go func() {
		time.Sleep(warm)
		s0 = take()
		time.Sleep(d)
		s1 = take()
		close(done)
	}()
	_, err = drive(clients, 0, warm+d, e.Seed, func(_ int, r *rand.Rand, _ uint64) error {
		k := r.Uint64N(100_000)
		return db.Update(ctx, func(tx *cruzdb.Txn) error { return tx.Put(makeKey(k), vals.get(k)) })
	})
	<-done
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return flushResult{}, err
	}
	el := s1.t.Sub(s0.t).Seconds()
	lc := s1.log.sub(s0.log)
	res := flushResult{
		afterimages:   float64(s1.st.AfterimagesWritten-s0.st.AfterimagesWritten) / el,
		commits:       float64(s1.st.Commits-s0.st.Commits) / el,
		mbps:          float64(s1.st.AfterimageBytes-s0.st.AfterimageBytes) / el / 1e6,
		intentionLat:  lc.meanAppend(kindIntention),
		afterimageLat: lc.meanAppend(kindAfterimage),
		unflushed:     s1.st.UnflushedBytes,
		physical:      s1.st.PointersPhysical - s0.st.PointersPhysical,
		intention:     s1.st.PointersIntention - s0.st.PointersIntention,
		backpressure:  s1.st.BackpressureWaits - s0.st.BackpressureWaits,
	}
	// The log wrapper sees afterimages even if Stats forgot to count them.
	if res.afterimages == 0 && lc.appends[kindAfterimage] > 0 {
		res.afterimages = float64(lc.appends[kindAfterimage]) / el
		res.mbps = float64(lc.appendB[kindAfterimage]) / el / 1e6
	}
	return res, nil
}
