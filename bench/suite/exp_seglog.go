package suite

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/boltlog"
	"github.com/cruzlog/cruzdb/log/seglog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	tidwal "github.com/tidwall/wal"
)

// ---- log appends: the embedded logs and candidate WAL libraries ----

// appender is one log under the append benchmark.
type appender interface {
	Append(data []byte) error
	Close() error
}

// trimmer is an appender whose log can be trimmed (the bounded-log runs).
type trimmer interface {
	Tail() (uint64, error)
	Trim(p uint64) error
}

type logCandidate struct {
	name string
	open func(dir string) (appender, error)
	note string
	// grow, bound: measured as a growing log (never trimmed), and as a
	// bounded one (trimmed behind the appenders).
	grow, bound bool
}

var logCandidates = []logCandidate{
	{"seglog", openSeglogAppender(nil), "log/seglog, default options: its own committer goroutine, one write + one fdatasync per group; blocks written as zeros ahead of the groups, trimmed segment files reused (one spare)", true, true},
	{"seglog-fallocate", openSeglogAppender(&seglog.Options{NoZeroFill: true}), "log/seglog with NoZeroFill: blocks preallocated (fallocate), not written ahead, no spares", true, false},
	{"seglog-nospare", openSeglogAppender(&seglog.Options{Spares: -1}), "log/seglog with Spares -1: trimmed segment files deleted, every new segment's blocks written as zeros first", false, true},
	{"boltlog", openBoltlogAppender, "log/boltlog: group commit in one bbolt transaction (two fdatasyncs)", true, true},
	{"raft-wal", openRaftWAL, "hashicorp/raft-wal v0.4.0, StoreLogs of the group gathered by the bench's committer goroutine", true, false},
	{"tidwall-wal", openTidwallWAL, "tidwall/wal v1.2.1, WriteBatch of the group gathered by the bench's committer goroutine", true, false},
}

type seglogAppender struct{ l *seglog.Log }

func openSeglogAppender(o *seglog.Options) func(dir string) (appender, error) {
	return func(dir string) (appender, error) {
		l, err := seglog.Open(dir, o)
		return &seglogAppender{l}, err
	}
}
func (a *seglogAppender) Append(d []byte) error {
	_, err := a.l.Append(context.Background(), d)
	return err
}
func (a *seglogAppender) Close() error { return a.l.Close() }
func (a *seglogAppender) Tail() (uint64, error) {
	p, err := a.l.Tail(context.Background())
	return uint64(p), err
}
func (a *seglogAppender) Trim(p uint64) error {
	return a.l.Trim(context.Background(), log.Position(p))
}

type boltlogAppender struct{ l *boltlog.Log }

func openBoltlogAppender(dir string) (appender, error) {
	l, err := boltlog.Open(filepath.Join(dir, "log.db"), nil)
	return &boltlogAppender{l}, err
}
func (a *boltlogAppender) Append(d []byte) error {
	_, err := a.l.Append(context.Background(), d)
	return err
}
func (a *boltlogAppender) Close() error { return a.l.Close() }
func (a *boltlogAppender) Tail() (uint64, error) {
	p, err := a.l.Tail(context.Background())
	return uint64(p), err
}
func (a *boltlogAppender) Trim(p uint64) error {
	return a.l.Trim(context.Background(), log.Position(p))
}

// groupCommitter gathers concurrent appends into one call of store: the
// same strategy as seglog's committer, for libraries that have none.
type groupCommitter struct {
	reqs  chan gcReq
	store func([][]byte) error
	done  chan struct{}
}

type gcReq struct {
	data []byte
	done chan error
}

func newGroupCommitter(store func([][]byte) error) *groupCommitter {
	g := &groupCommitter{reqs: make(chan gcReq, 1024), store: store, done: make(chan struct{})}
	go g.loop()
	return g
}

func (g *groupCommitter) loop() {
	defer close(g.done)
	var batch []gcReq
	var data [][]byte
	for r := range g.reqs {
		batch, data = append(batch[:0], r), append(data[:0], r.data)
	drain:
		for len(batch) < 1024 {
			select {
			case r2, ok := <-g.reqs:
				if !ok {
					break drain
				}
				batch, data = append(batch, r2), append(data, r2.data)
			default:
				break drain
			}
		}
		err := g.store(data)
		for _, b := range batch {
			b.done <- err
		}
	}
}

func (g *groupCommitter) Append(d []byte) error {
	done := make(chan error, 1)
	g.reqs <- gcReq{data: d, done: done}
	return <-done
}

func (g *groupCommitter) stop() { close(g.reqs); <-g.done }

type raftWALAppender struct {
	*groupCommitter
	w *raftwal.WAL
}

func openRaftWAL(dir string) (appender, error) {
	w, err := raftwal.Open(dir)
	if err != nil {
		return nil, err
	}
	next, err := w.LastIndex()
	if err != nil {
		return nil, err
	}
	a := &raftWALAppender{w: w}
	a.groupCommitter = newGroupCommitter(func(data [][]byte) error {
		logs := make([]*raft.Log, len(data))
		for i, d := range data {
			next++
			logs[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: d}
		}
		return w.StoreLogs(logs)
	})
	return a, nil
}
func (a *raftWALAppender) Close() error { a.stop(); return a.w.Close() }

type tidwallAppender struct {
	*groupCommitter
	l *tidwal.Log
}

func openTidwallWAL(dir string) (appender, error) {
	l, err := tidwal.Open(dir, &tidwal.Options{SegmentSize: 64 << 20})
	if err != nil {
		return nil, err
	}
	next, err := l.LastIndex()
	if err != nil {
		return nil, err
	}
	a := &tidwallAppender{l: l}
	var b tidwal.Batch
	a.groupCommitter = newGroupCommitter(func(data [][]byte) error {
		b.Clear()
		for _, d := range data {
			next++
			b.Write(next, d)
		}
		return l.WriteBatch(&b)
	})
	return a, nil
}
func (a *tidwallAppender) Close() error { a.stop(); return a.l.Close() }

// procWriteBytes is this process's write_bytes from /proc/self/io: bytes it
// caused to be written to storage (counted when pages are dirtied).
func procWriteBytes() (uint64, bool) {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

type appendPoint struct {
	rate, p50, p99, wamp float64
	// seglog only (NaN otherwise): fdatasync µs per group commit, appends
	// per group, segments started in a reused file.
	syncUs, perGroup, recycled float64
}

// Bounded-log runs: a trimmer keeps the live log at boundWindow bytes of
// entries, trimming every boundEvery; before the measured interval (and
// its warm-up) the appenders run for Env.boundPrefill with the trimmer on,
// so that the measured appends land in segment files past their first
// lives (a few tens of segment lives at every size measured here).
const (
	boundWindow = 1 << 20
	boundEvery  = 100 * time.Millisecond
)

// boundPrefill: 2 s (a full run), 300 ms (quick), 20 ms (tiny).
func (e *Env) boundPrefill() time.Duration {
	return e.pick(2*time.Second, 300*time.Millisecond, 20*time.Millisecond)
}

// runTrimmer trims a behind its tail, keeping window entries, every
// boundEvery until stop is closed; the first error is sent on the
// returned channel (closed when it stops).
func runTrimmer(a trimmer, window uint64, stop <-chan struct{}) <-chan error {
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		tick := time.NewTicker(boundEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			tail, err := a.Tail()
			if err == nil && tail > window {
				err = a.Trim(tail - window)
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}

// appendOnce runs one closed-loop append measurement on a fresh log,
// growing or bounded (trimmed behind the appenders).
func (e *Env) appendOnce(c logCandidate, bounded bool, clients, size int, warm, d time.Duration) (appendPoint, error) {
	dir, cleanup, err := e.tempDir(c.name)
	if err != nil {
		return appendPoint{}, err
	}
	defer cleanup()
	a, err := c.open(dir)
	if err != nil {
		return appendPoint{}, fmt.Errorf("open %s: %w", c.name, err)
	}
	data := bytes.Repeat([]byte{0x5a}, size)
	var errc <-chan error
	stop := make(chan struct{})
	if bounded {
		tr, ok := a.(trimmer)
		if !ok {
			a.Close()
			return appendPoint{}, fmt.Errorf("%s cannot be trimmed", c.name)
		}
		errc = runTrimmer(tr, uint64(max(1, boundWindow/size)), stop)
		if _, err := drive(clients, 0, e.boundPrefill(), e.Seed, func(_ int, _ *rand.Rand, _ uint64) error {
			return a.Append(data)
		}); err != nil {
			close(stop)
			a.Close()
			return appendPoint{}, fmt.Errorf("%s: fill: %w", c.name, err)
		}
	}
	var st0 seglog.Stats
	sl, isSeg := a.(*seglogAppender)
	if isSeg {
		st0 = sl.l.Stats()
	}
	var appended atomic.Uint64
	w0, okW := procWriteBytes()
	r, err := drive(clients, warm, d, e.Seed, func(_ int, _ *rand.Rand, _ uint64) error {
		err := a.Append(data)
		appended.Add(uint64(size))
		return err
	})
	w1, _ := procWriteBytes()
	p := appendPoint{rate: r.rate(), p50: r.quantile(0.5), p99: r.quantile(0.99), syncUs: math.NaN(), perGroup: math.NaN(), recycled: math.NaN()}
	if isSeg {
		st := sl.l.Stats()
		if g := st.Groups - st0.Groups; g > 0 {
			p.syncUs = float64(st.SyncTime-st0.SyncTime) / float64(g) / 1e3
			p.perGroup = float64(st.Entries-st0.Entries) / float64(g)
		}
		p.recycled = float64(st.Recycled - st0.Recycled)
	}
	close(stop)
	if errc != nil {
		if terr := <-errc; err == nil && terr != nil {
			err = fmt.Errorf("trim: %w", terr)
		}
	}
	if cerr := a.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return appendPoint{}, fmt.Errorf("%s with %d appenders: %w", c.name, clients, err)
	}
	if okW && appended.Load() > 0 {
		p.wamp = float64(w1-w0) / float64(appended.Load())
	}
	return p, nil
}

// runLogAppend: appends/s of the embedded logs and of the WAL libraries
// considered for seglog, with fsync on, 1 and 64 appenders (200-byte
// entries) and 1 appender of 100 KB entries; bytes written to storage per
// byte appended. Each log runs as a growing log (never trimmed: every
// segment is new) and, for the embedded logs, as a bounded one (trimmed
// behind the appenders, keeping 1 MiB of entries: cruzdb's steady state,
// which trims behind its checkpoints; seglog reuses trimmed segment files
// there). Candidates are interleaved in every run.
func runLogAppend(e *Env) error {
	type cfg struct{ clients, size int }
	cfgs := pick(e, []cfg{{1, 200}, {64, 200}, {1, 100 << 10}}, []cfg{{1, 200}, {64, 200}, {1, 100 << 10}}, []cfg{{1, 200}, {4, 200}})
	d := e.pick(3*time.Second, 500*time.Millisecond, 100*time.Millisecond)
	warm := e.pick(300*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond)
	t := &Table{
		Name:  "logappend",
		Title: fmt.Sprintf("logappend: log appends with fdatasync (%s, %s per point, %d interleaved run(s))", e.mode(), d, e.Runs),
		Columns: []string{"log", "log kept", "appenders", "entry bytes", "appends/s", "p50 µs", "p99 µs", "written/appended",
			"fdatasync µs/group", "appends/group", "reused segments", "÷ boltlog"},
	}
	type mode struct {
		name    string
		bounded bool
	}
	modes := []mode{{"growing", false}, {"bounded", true}}
	points := 0
	for _, lc := range logCandidates {
		if lc.grow {
			points++
		}
		if lc.bound {
			points++
		}
	}
	steps := e.steps(e.Runs * len(cfgs) * points)
	type key struct {
		name string
		mode string
		i    int
	}
	rates, wamps, syncs, per, reused := map[key]*Sample{}, map[key]*Sample{}, map[key]*Sample{}, map[key]*Sample{}, map[key]*Sample{}
	last := map[key]appendPoint{}
	for run := range e.Runs {
		for i, c := range cfgs {
			for _, m := range modes {
				for _, lc := range logCandidates {
					if (m.bounded && !lc.bound) || (!m.bounded && !lc.grow) {
						continue
					}
					steps.Step("run %d: %s %s, %d appenders of %d B", run+1, m.name, lc.name, c.clients, c.size)
					p, err := e.appendOnce(lc, m.bounded, c.clients, c.size, warm, d)
					if err != nil {
						return err
					}
					k := key{lc.name, m.name, i}
					if rates[k] == nil {
						rates[k], wamps[k], syncs[k], per[k], reused[k] = &Sample{}, &Sample{}, &Sample{}, &Sample{}, &Sample{}
					}
					rates[k].Values = append(rates[k].Values, p.rate)
					wamps[k].Values = append(wamps[k].Values, p.wamp)
					syncs[k].Values = append(syncs[k].Values, p.syncUs)
					per[k].Values = append(per[k].Values, p.perGroup)
					reused[k].Values = append(reused[k].Values, p.recycled)
					last[k] = p
				}
			}
		}
	}
	nanOr := func(s *Sample) any {
		if m := s.Median(); !math.IsNaN(m) {
			return m
		}
		return nil
	}
	for i, c := range cfgs {
		for _, m := range modes {
			for _, lc := range logCandidates {
				k := key{lc.name, m.name, i}
				if rates[k] == nil {
					continue
				}
				t.Add(lc.name, m.name, c.clients, c.size, *rates[k], last[k].p50, last[k].p99, wamps[k].Median(),
					nanOr(syncs[k]), nanOr(per[k]), nanOr(reused[k]), rates[k].Median()/rates[key{"boltlog", m.name, i}].Median())
			}
		}
	}
	for _, lc := range logCandidates {
		t.Note("%s: %s", lc.name, lc.note)
	}
	t.Note("growing: a fresh log, never trimmed. bounded: a trimmer keeps %d KiB of entries (Trim every %s), and the appenders run for %s (with the trimmer on) before the measured interval", boundWindow>>10, boundEvery, e.boundPrefill())
	t.Note("written/appended: the process's write_bytes (/proc/self/io, counted as pages are dirtied, so a group that ends mid-page writes that page again next time) over the bytes appended, in the same interval (the trims' metadata writes included); journal writes of the file system are not in it")
	t.Note("fdatasync µs/group, appends/group, reused segments: seglog's Stats over the measured interval and its warm-up (medians over runs)")
	t.Note("latency quantiles are from the last run")
	if err := e.Emit(t); err != nil {
		return err
	}
	var groups []string
	for _, c := range cfgs {
		groups = append(groups, fmt.Sprintf("%d × %d B", c.clients, c.size))
	}
	var series []BarSeries
	for _, m := range modes {
		for _, lc := range logCandidates {
			if rates[key{lc.name, m.name, 0}] == nil {
				continue
			}
			s := BarSeries{Name: lc.name + " " + m.name}
			for i := range cfgs {
				s.Values = append(s.Values, rates[key{lc.name, m.name, i}].Median())
			}
			series = append(series, s)
		}
	}
	return e.BarPlot("logappend", "log appends/s with fdatasync", "appends/s", groups, series)
}

// ---- durable commits on both embedded logs, side by side with peers ----

// openCruzBoltlog opens cruzdb on its embedded boltlog: an empty log.db in
// the directory makes Open choose boltlog.
func openCruzBoltlog(dir string, o kvOpts) (kv, error) {
	if err := os.WriteFile(filepath.Join(dir, cruzdb.LogFileName), nil, 0o600); err != nil {
		return nil, err
	}
	return openCruz(dir, o)
}

// runCommitLogs: the commit experiment's durable 1-put transactions with 1
// and 16 clients, for cruzdb on seglog (the default) and on boltlog, bbolt,
// Pebble and Badger, interleaved in every run, with the fdatasync line
// measured in each run too.
func runCommitLogs(e *Env) error {
	clients := pick(e, []int{1, 16}, []int{1, 16}, []int{1, 4})
	d := e.pick(3*time.Second, 500*time.Millisecond, 100*time.Millisecond)
	warm := e.pick(300*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond)
	syss := []system{
		{"cruzdb-seglog", openCruz, ""},
		{"cruzdb-boltlog", openCruzBoltlog, ""},
		systems[1], systems[2], systems[3],
	}
	t := &Table{
		Name:    "commitlogs",
		Title:   fmt.Sprintf("commitlogs: durable 1-put transactions, cruzdb on each embedded log vs peers (%s, %s per point, %d interleaved run(s))", e.mode(), d, e.Runs),
		Columns: []string{"system", "clients", "txns/s", "p50 µs", "p99 µs", "÷ pebble", "÷ fdatasync/s"},
	}
	steps := e.steps(e.Runs * (1 + len(syss)*len(clients)))
	var fs Sample
	type key struct {
		name string
		c    int
	}
	rates := map[key]*Sample{}
	last := map[key]driveResult{}
	vals := newValues(e.Seed)
	for run := range e.Runs {
		steps.Step("run %d: fdatasync loop", run+1)
		n, el, err := fsyncLoop(e.DataDir, d)
		if err != nil {
			return err
		}
		fs.Values = append(fs.Values, float64(n)/el.Seconds())
		for _, sys := range syss {
			for _, c := range clients {
				steps.Step("run %d: %s, %d clients", run+1, sys.name, c)
				dir, cleanup, err := e.tempDir(sys.name)
				if err != nil {
					return err
				}
				db, err := sys.open(dir, kvOpts{Sync: true})
				if err != nil {
					cleanup()
					return fmt.Errorf("open %s: %w", sys.name, err)
				}
				r, err := drive(c, warm, d, e.Seed, func(_ int, r *rand.Rand, _ uint64) error {
					k := r.Uint64()
					return db.Put(makeKey(k%1e15), vals.get(k))
				})
				if cerr := db.Close(); err == nil && cerr != nil {
					err = cerr
				}
				cleanup()
				if err != nil {
					return fmt.Errorf("%s with %d clients: %w", sys.name, c, err)
				}
				k := key{sys.name, c}
				if rates[k] == nil {
					rates[k] = &Sample{}
				}
				rates[k].Values = append(rates[k].Values, r.rate())
				last[k] = r
			}
		}
	}
	t.Add("4 KiB overwrite + fdatasync", 1, fs, 1e6/fs.Median(), nil, nil, 1.0)
	for _, sys := range syss {
		for _, c := range clients {
			k := key{sys.name, c}
			var vsSync any
			if c == 1 {
				vsSync = rates[k].Median() / fs.Median()
			}
			t.Add(sys.name, c, *rates[k], last[k].quantile(0.5), last[k].quantile(0.99), rates[k].Median()/rates[key{"pebble", c}].Median(), vsSync)
		}
	}
	t.Note("each point on a fresh database; systems interleaved in every run; latency quantiles from the last run")
	t.Note("cruzdb: Update with one Put on the embedded log named; bbolt: one Update per txn; Pebble: Set with pebble.Sync; Badger: Update with SyncWrites=true")
	if err := e.Emit(t); err != nil {
		return err
	}
	var groups []string
	for _, c := range clients {
		groups = append(groups, fmt.Sprintf("%d client(s)", c))
	}
	var series []BarSeries
	for _, sys := range syss {
		s := BarSeries{Name: sys.name}
		for _, c := range clients {
			s.Values = append(s.Values, rates[key{sys.name, c}].Median())
		}
		series = append(series, s)
	}
	return e.BarPlot("commitlogs", "durable 1-put transactions/s", "txns/s", groups, series)
}
