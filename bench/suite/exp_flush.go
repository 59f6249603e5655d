package suite

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/flusher"
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
	maxClients := pick(e, 256, 64, 16)
	// Enough writers to offer more than W/L commits/s (each commit's own
	// append waits L too), few enough that memlog's spinning waits do not
	// eat the two cores.
	clientsFor := func(c flushConfig) int {
		if c.serial {
			return min(maxClients, 16)
		}
		return min(maxClients, max(16, 2*c.workers))
	}

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
		Title: fmt.Sprintf("flush: afterimages/s under closed-loop writers (%s, %s per point, %d run(s))",
			e.mode(), d, e.Runs),
		Columns: []string{"log", "latency", "mode", "workers", "writers", "ideal/s", "afterimages/s", "% of ideal",
			"ideal at measured latency", "% of that",
			"MB/s", "commits/s", "pointers physical / intention", "backpressure waits", "intention append µs",
			"afterimage append µs", "unflushed KiB at end"},
	}

	// Probe: without the flusher (issue 4), nothing is written.
	e.progressf("probe: is there a flusher?")
	probe, err := e.flushOne(flushConfig{backend: "memlog", workers: 8}, 16, 0, e.pick(500*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond))
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
			t.Add(c.backend, latS, mode, c.workers, clientsFor(c), c.ideal(), "flusher not available")
			measured[i] = math.NaN()
			continue
		}
		steps.Step("%s", c)
		var last flushResult
		s, err := e.repeatN(3, func() ([]float64, error) {
			r, err := e.flushOne(c, clientsFor(c), warm, d)
			last = r
			return []float64{r.afterimages, r.mbps, r.commits}, err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		measured[i] = s[0].Median()
		var pct, idealM, pctM any
		if id := c.ideal(); !math.IsNaN(id) {
			pct = 100 * s[0].Median() / id
		}
		if last.afterimageLat > 0 {
			w := c.workers
			if c.serial {
				w = 1
			}
			im := float64(w) / last.afterimageLat.Seconds()
			idealM, pctM = im, 100*s[0].Median()/im
		}
		t.Add(c.backend, latS, mode, c.workers, clientsFor(c), c.ideal(), s[0], pct, idealM, pctM, s[1], s[2],
			fmt.Sprintf("%s / %s", humanInt(int64(last.physical)), humanInt(int64(last.intention))),
			last.backpressure, float64(last.intentionLat)/1e3, float64(last.afterimageLat)/1e3, float64(last.unflushed)/1024)
	}
	t.Note("writers: closed-loop clients (serial: 16; parallel: 2 x workers within 16..%d), each an Update of one Put (16 B key among 100K, 100 B value); MaxUnflushedBytes %d MiB", maxClients, flushMaxUnflushed>>20)
	t.Note("ideal at measured latency = workers / the mean afterimage Append time the log wrapper measured (last run): memlog's precise waits spin for their last 1.5 ms, so on 2 cores under load an injected wait lasts longer than asked")
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
	if err := e.LinePlot("flush", title, "flush workers", "afterimages/s", true, true, series); err != nil {
		return err
	}
	if !available {
		return nil
	}
	return e.flushBacklog(pick(e, lats[1:], lats, lats), workers)
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

// flushBacklog measures flush capacity without the commit path in the way:
// a node opens on a log of intentions whose afterimages are missing (the
// builder's were turned into junk) and, with FlushPolicy all, must write
// every afterimage itself while it replays. The rate is the afterimages it
// wrote over the time from Open until Flush returns. Replay feeds the
// flusher far faster than closed-loop commits can on two cores, so this is
// the line to hold against workers/latency.
func (e *Env) flushBacklog(lats []time.Duration, workers []int) error {
	ctx := context.Background()
	total := pick(e, 60_000, 8_000, 1_000)
	budget := e.pick(3*time.Second, 300*time.Millisecond, 100*time.Millisecond)

	// The template: a builder's log with its afterimages as junk (nil).
	e.progressf("backlog: building %d intentions", total)
	ml := memlog.New(nil)
	defer ml.Close()
	db, err := cruzdb.Open("", &cruzdb.Options{Log: ml, CacheBytes: builderCacheBytes, CheckpointLogRatio: noCheckpoints})
	if err != nil {
		return err
	}
	vals := newValues(e.Seed)
	err = parallel(64, total, e.Seed, func(r *rand.Rand, _ int) error {
		k := r.Uint64N(100_000)
		return db.Update(ctx, func(tx *cruzdb.Txn) error { return tx.Put(makeKey(k), vals.get(k)) })
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	tail, err := ml.Tail(ctx)
	if err != nil {
		return err
	}
	var tmpl [][]byte
	var intentionAt []int // index in tmpl of each intention
	for p := log.Position(0); p < tail; p++ {
		b, err := ml.Read(ctx, p)
		if err != nil || entryKind(b) == kindAfterimage {
			tmpl = append(tmpl, nil)
			continue
		}
		if entryKind(b) == kindIntention {
			intentionAt = append(intentionAt, len(tmpl))
		}
		tmpl = append(tmpl, b)
	}
	ml.Close()

	type cfg struct {
		lat     time.Duration
		serial  bool
		workers int
	}
	var cfgs []cfg
	for _, l := range lats {
		cfgs = append(cfgs, cfg{l, true, 1})
		for _, w := range workers {
			cfgs = append(cfgs, cfg{l, false, w})
		}
	}
	t := &Table{
		Name:  "flush-backlog",
		Title: fmt.Sprintf("flush capacity: a node writing the afterimages of a backlog of intentions (%s, %d run(s))", e.mode(), e.Runs),
		Columns: []string{"latency", "mode", "workers", "intentions", "ideal/s", "afterimages/s", "% of ideal",
			"ideal at measured latency", "% of that", "replay done ms", "pointers physical / intention", "afterimage append µs"},
	}
	steps := e.steps(len(cfgs))
	measured := make([]float64, len(cfgs))
	for i, c := range cfgs {
		w := c.workers
		mode := "parallel"
		if c.serial {
			w, mode = 1, "serial"
		}
		ideal := math.NaN()
		n := len(intentionAt)
		if c.lat > 0 {
			ideal = float64(w) / c.lat.Seconds()
			n = min(n, max(500, int(ideal*budget.Seconds())))
		}
		steps.Step("backlog: latency %s, %s, %d workers, %d intentions", c.lat, mode, c.workers, n)
		var (
			replayMs      float64
			phys, intp    uint64
			afterimageLat time.Duration
		)
		s, err := e.repeat(func() (float64, error) {
			ml := memlog.New(nil)
			defer ml.Close()
			for i, b := range tmpl[:intentionAt[n-1]+1] {
				p := log.Position(i)
				if b == nil {
					if err := ml.Fill(ctx, p); err != nil {
						return 0, err
					}
					continue
				}
				q, err := ml.Append(ctx, b)
				if err != nil {
					return 0, err
				}
				if q != p {
					return 0, fmt.Errorf("copy: entry %d landed at %d", p, q)
				}
			}
			if c.lat > 0 {
				ml.SetInject(func(call memlog.Call, _ *rand.Rand) memlog.Fault {
					if call.Op == memlog.OpAppend {
						return memlog.Fault{Delay: c.lat}
					}
					return memlog.Fault{}
				})
			}
			cl := newCountingLog(ml)
			start := time.Now()
			db, err := cruzdb.Open("", &cruzdb.Options{Log: cl, FlushPolicy: flusher.PolicyAll, CheckpointLogRatio: noCheckpoints,
				FlushWorkers: c.workers, FlushSerial: c.serial, CacheBytes: builderCacheBytes,
				MaxUnflushedBytes: 4 << 30})
			if err != nil {
				return 0, err
			}
			replayMs = float64(time.Since(start)) / 1e6
			err = db.Flush(ctx)
			el := time.Since(start)
			// Stats after Close: an afterimage append can return (and be
			// counted) just after Flush saw it confirmed.
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			st := db.Stats()
			if err != nil {
				return 0, err
			}
			lc := cl.counts()
			phys, intp, afterimageLat = st.PointersPhysical, st.PointersIntention, lc.meanAppend(kindAfterimage)
			if st.AfterimagesWritten < uint64(n) {
				return 0, fmt.Errorf("wrote %d afterimages for %d intentions (%d commits, %d aborts)",
					st.AfterimagesWritten, n, st.Commits, st.Aborts)
			}
			return float64(st.AfterimagesWritten) / el.Seconds(), nil
		})
		if err != nil {
			return fmt.Errorf("backlog %v: %w", c, err)
		}
		measured[i] = s.Median()
		var pct, im, pctM any
		if !math.IsNaN(ideal) {
			pct = 100 * s.Median() / ideal
		}
		if afterimageLat > 0 && c.lat > 0 {
			v := float64(w) / afterimageLat.Seconds()
			im, pctM = v, 100*s.Median()/v
		}
		t.Add(c.lat.String(), mode, c.workers, n, ideal, s, pct, im, pctM, replayMs,
			fmt.Sprintf("%s / %s", humanInt(int64(phys)), humanInt(int64(intp))), float64(afterimageLat)/1e3)
	}
	t.Note("the log: %d one-put intentions (16 B keys among 100K, 100 B values) written by a builder node, its afterimages replaced by junk; each point copies a prefix of it into a fresh memlog whose appends then wait the injected latency (memlog Fault.Delay)", len(intentionAt))
	t.Note("the node opens with FlushPolicy all, so it writes an afterimage for every intention it replays; afterimages/s = afterimages written / (Open + Flush); 'replay done' is when Open returned (last run)")
	t.Note("ideal = workers / latency (serial: 1 / latency); issue 4's target: ≥ 80%% of it up to 64 workers, ≥ 50x serial at 1 ms")
	t.Note("ideal at measured latency uses the mean afterimage Append time a log wrapper saw (last run)")
	if err := e.Emit(t); err != nil {
		return err
	}
	var series []Series
	for _, l := range lats {
		if l == 0 {
			continue
		}
		meas := Series{Name: fmt.Sprintf("measured, %s", l)}
		ideal := Series{Name: fmt.Sprintf("ideal W/L, %s", l), Dashed: true}
		for i, c := range cfgs {
			if c.lat != l || c.serial {
				continue
			}
			meas.X, meas.Y = append(meas.X, float64(c.workers)), append(meas.Y, measured[i])
			ideal.X, ideal.Y = append(ideal.X, float64(c.workers)), append(ideal.Y, float64(c.workers)/l.Seconds())
		}
		series = append(series, meas, ideal)
	}
	return e.LinePlot("flush-backlog", "flush capacity (backlog) vs workers", "flush workers", "afterimages/s", true, true, series)
}
