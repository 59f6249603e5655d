// Command commitprobe measures durable 1-put commits in one process and one
// round: the 4 KiB overwrite + fdatasync line, cruzdb on seglog (opened by
// the probe, so that its counters can be printed) and Pebble Set with Sync,
// each with the given client counts, a fresh directory per point. It is the
// tool behind bench/journal/2026-12-07-seg20.md: run two builds of it
// alternately and compare each build's ratios to the peers of its own round.
//
// -cpuprofile profiles the first cruzdb point's measured window; -duty and
// -ratio set Options.CheckpointDuty and CheckpointLogRatio, -nockpt turns
// automatic checkpoints off. Each cruzdb line gives log, afterimage and
// checkpoint image bytes per commit, the commits held behind checkpoints
// (ckwaits), and a line after it the image of a checkpoint made at the
// end with the checkpoint counts (bench/journal/2026-12-07-cpu20.md).
//
//	go run ./commitprobe -clients 1,16,64 -d 2s
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log/seglog"
)

func main() {
	clientsF := flag.String("clients", "1,16,64", "client counts")
	d := flag.Duration("d", 2*time.Second, "measured time per point")
	warm := flag.Duration("warm", 300*time.Millisecond, "warm-up per point")
	data := flag.String("data", os.TempDir(), "directory for the databases")
	sys := flag.String("systems", "line,cruzdb,pebble", "what to measure, in order (seglog: appends of -entry bytes alone)")
	entry := flag.Int("entry", 1000, "entry size of the seglog system")
	nockpt := flag.Bool("nockpt", false, "cruzdb without automatic checkpoints")
	flag.Float64Var(&ckDuty, "duty", 0, "cruzdb Options.CheckpointDuty (0: the default)")
	flag.Float64Var(&ckRatio, "ratio", 0, "cruzdb Options.CheckpointLogRatio (0: the default)")
	flag.BoolVar(&keep, "keep", false, "cruzdb: one database for every client count, in order (as the suite's commit experiment), not a fresh one per point")
	flag.IntVar(&prefill, "prefill", 0, "cruzdb: keys written (100 a transaction) before each point's warm-up, so that its tree does not start empty")
	label := flag.String("label", "", "label printed on every line")
	flag.IntVar(&flushWorkers, "workers", 0, "cruzdb Options.FlushWorkers (0: the default)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the measured windows of every cruzdb point to this file")
	flag.StringVar(&memProfile, "memprofile", "", "write an allocation profile (pprof allocs) after the first cruzdb point to this file")
	traceFile := flag.String("trace", "", "write a runtime/trace of the first 500ms of the first cruzdb point's measured window to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		profileOut = f
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		traceOut = f
	}
	var clients []int
	for _, s := range strings.Split(*clientsF, ",") {
		c, err := strconv.Atoi(s)
		if err != nil || c < 1 {
			fail(fmt.Errorf("bad -clients %q", *clientsF))
		}
		clients = append(clients, c)
	}
	rates := map[string]float64{}
	systems := strings.Split(*sys, ",")
	// Client counts outside, systems inside: the peers of one client
	// count are measured seconds apart. The line is measured with the
	// first client count, where -systems puts it.
	for i, c := range clients {
		for _, s := range systems {
			switch s {
			case "line":
				if i > 0 {
					continue
				}
				r, err := line(*data, *warm, *d)
				if err != nil {
					fail(err)
				}
				rates["line"] = r
				fmt.Printf("%s line 1 %.0f/s\n", *label, r)
			case "cruzdb", "pebble", "seglog":
				r, err := point(s, *data, c, *warm, *d, *nockpt, *label, *entry)
				if err != nil {
					fail(err)
				}
				rates[s+strconv.Itoa(c)] = r
			default:
				fail(fmt.Errorf("unknown system %q", s))
			}
		}
	}
	var parts []string
	for _, c := range clients {
		cz, pb := rates["cruzdb"+strconv.Itoa(c)], rates["pebble"+strconv.Itoa(c)]
		if cz > 0 && pb > 0 {
			parts = append(parts, fmt.Sprintf("c%d÷pebble=%.2f", c, cz/pb))
		}
	}
	for _, c := range clients {
		if sg, ln := rates["seglog"+strconv.Itoa(c)], rates["line"]; sg > 0 && ln > 0 {
			parts = append(parts, fmt.Sprintf("s%d÷line=%.2f", c, sg/ln))
		}
	}
	if cz, ln := rates["cruzdb1"], rates["line"]; cz > 0 && ln > 0 {
		parts = append(parts, fmt.Sprintf("c1÷line=%.2f", cz/ln))
	}
	if pb, ln := rates["pebble1"], rates["line"]; pb > 0 && ln > 0 {
		parts = append(parts, fmt.Sprintf("p1÷line=%.2f", pb/ln))
	}
	fmt.Printf("%s ratios %s\n", *label, strings.Join(parts, " "))
	if kept != nil {
		err := kept.db.Close()
		if cerr := kept.l.Close(); err == nil {
			err = cerr
		}
		os.RemoveAll(kept.dir)
		if err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "commitprobe:", err)
	os.Exit(1)
}

// line overwrites one 4 KiB block and fdatasyncs it in a loop.
func line(data string, warm, d time.Duration) (float64, error) {
	dir, err := os.MkdirTemp(data, "probe-line-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.WriteAt(buf, 0); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	var n int
	start := time.Now()
	deadline := start.Add(warm)
	measuring := false
	for {
		now := time.Now()
		if !measuring && now.After(deadline) {
			measuring, start, n, deadline = true, now, 0, now.Add(d)
		} else if measuring && now.After(deadline) {
			return float64(n) / now.Sub(start).Seconds(), nil
		}
		buf[0]++
		if _, err := f.WriteAt(buf, 0); err != nil {
			return 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
		n++
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func point(sys, data string, clients int, warm, d time.Duration, nockpt bool, label string, entry int) (float64, error) {
	dir, err := os.MkdirTemp(data, "probe-"+sys+"-")
	if err != nil {
		return 0, err
	}
	defer func() {
		if dir != "" { // "": the database is kept (-keep)
			os.RemoveAll(dir)
		}
	}()
	var (
		put   func(k, v []byte) error
		close func() error
		stats func() string
	)
	switch sys {
	case "cruzdb":
		if kept != nil {
			db, l := kept.db, kept.l
			put = func(k, v []byte) error {
				return db.Update(context.Background(), func(tx *cruzdb.Txn) error { return tx.Put(k, v) })
			}
			close = func() error { return nil }
			stats = cruzStats(db, l)
			break
		}
		l, err := seglog.Open(filepath.Join(dir, "seglog"), segOptions())
		if err != nil {
			return 0, err
		}
		opts := cruzdb.DefaultOptions()
		opts.Log = l
		if nockpt {
			opts.CheckpointLogRatio = -1
		}
		if ckRatio > 0 {
			opts.CheckpointLogRatio = ckRatio
		}
		if ckDuty > 0 {
			opts.CheckpointDuty = ckDuty
		}
		if flushWorkers > 0 {
			opts.FlushWorkers = flushWorkers
		}
		db, err := cruzdb.Open("", &opts)
		if err != nil {
			l.Close()
			return 0, err
		}
		put = func(k, v []byte) error {
			return db.Update(context.Background(), func(tx *cruzdb.Txn) error { return tx.Put(k, v) })
		}
		r := rand.New(rand.NewPCG(7, 7))
		val := make([]byte, 100)
		for i := 0; i < prefill; i += 100 {
			err := db.Update(context.Background(), func(tx *cruzdb.Txn) error {
				for range 100 {
					if err := tx.Put(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, r.Uint64()), r.Uint64()), val); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				db.Close()
				l.Close()
				return 0, err
			}
		}
		if keep {
			kept = &keptDB{db: db, l: l, dir: dir}
			dir = "" // removed at the end of main
			close = func() error { return nil }
		} else {
			close = func() error {
				if info, err := db.Checkpoint(context.Background()); err == nil {
					st := db.Stats()
					fmt.Printf("%s cruzdb %d image at the end: %d nodes, %d KB, %.0f B a node; in all: %d checkpoints confirmed, %d automatic, %d images written, %d aborted\n",
						label, clients, info.Nodes, info.Bytes>>10, float64(info.Bytes)/float64(max(info.Nodes, 1)), st.Checkpoints, st.AutoCheckpoints, st.CheckpointsWritten, st.CheckpointsAborted)
				}
				err := db.Close()
				if cerr := l.Close(); err == nil {
					err = cerr
				}
				return err
			}
		}
		stats = cruzStats(db, l)
	case "seglog":
		l, err := seglog.Open(filepath.Join(dir, "seglog"), nil)
		if err != nil {
			return 0, err
		}
		buf := make([]byte, entry)
		put = func(k, v []byte) error {
			_, err := l.Append(context.Background(), buf)
			return err
		}
		close = l.Close
		var l0 seglog.Stats
		var w0 int64
		stats = func() string {
			ls, w := l.Stats(), writeBytes()
			if l0 == (seglog.Stats{}) {
				l0, w0 = ls, w
				return ""
			}
			return fmt.Sprintf("entries/group=%.1f written/appended=%.2f seg=%s", float64(ls.Entries-l0.Entries)/float64(ls.Groups-l0.Groups),
				float64(w-w0)/float64(ls.Bytes-l0.Bytes), extraStats(ls, l0))
		}
	case "pebble":
		db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}})
		if err != nil {
			return 0, err
		}
		put = func(k, v []byte) error { return db.Set(k, v, pebble.Sync) }
		close = db.Close
		stats = func() string { return "" }
	}
	val := make([]byte, 100)
	var (
		wg        sync.WaitGroup
		measuring atomic.Bool
		stop      atomic.Bool
		ops       atomic.Uint64
		firstErr  atomic.Value
		lats      = make([][]time.Duration, clients)
	)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(1, uint64(c)+1))
			key := make([]byte, 16)
			for !stop.Load() {
				for i := range key {
					key[i] = byte(r.Uint32())
				}
				t := time.Now()
				if err := put(key, val); err != nil {
					firstErr.CompareAndSwap(nil, err)
					stop.Store(true)
					return
				}
				if measuring.Load() {
					ops.Add(1)
					if len(lats[c]) < 100000 {
						lats[c] = append(lats[c], time.Since(t))
					}
				}
			}
		}(c)
	}
	time.Sleep(warm)
	stats()
	profiling := false
	if profileOut != nil && sys == "cruzdb" {
		if err := pprof.StartCPUProfile(profileOut); err == nil {
			profiling = true
			profileOut = nil // one profile per file: the first cruzdb point
		}
	}
	tracing := false
	if traceOut != nil && sys == "cruzdb" {
		if err := trace.Start(traceOut); err == nil {
			tracing = true
			traceOut = nil // one trace per file: the first cruzdb point
		}
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	measuring.Store(true)
	start := time.Now()
	if tracing {
		time.Sleep(min(d, 500*time.Millisecond))
		trace.Stop()
	}
	time.Sleep(d - time.Since(start))
	n := ops.Load()
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	if memProfile != "" && sys == "cruzdb" {
		if f, err := os.Create(memProfile); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		memProfile = "" // the first cruzdb point only
	}
	st := stats()
	if profiling {
		pprof.StopCPUProfile()
	}
	stop.Store(true)
	wg.Wait()
	if err := close(); err != nil {
		return 0, err
	}
	if e := firstErr.Load(); e != nil {
		return 0, e.(error)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	q := func(f float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(f*float64(len(all)-1))]
	}
	rate := float64(n) / el.Seconds()
	fmt.Printf("%s %s %d %.0f/s p50=%dµs p99=%dµs cpu=%.1fµs/op alloc=%.1fKB/op gcs=%d %s\n", label, sys, clients, rate,
		q(0.5).Microseconds(), q(0.99).Microseconds(), float64(cpu.Microseconds())/float64(max(n, 1)),
		float64(ms1.TotalAlloc-ms0.TotalAlloc)/1024/float64(max(n, 1)), ms1.NumGC-ms0.NumGC, st)
	return rate, nil
}

// cruzStats returns a point's stats function for db on l: the first call
// takes the baseline, later ones format the counters since it.
func cruzStats(db *cruzdb.DB, l *seglog.Log) func() string {
	var l0 seglog.Stats
	var s0 cruzdb.Stats
	return func() string {
		ls, s := l.Stats(), db.Stats()
		if l0 == (seglog.Stats{}) {
			l0, s0 = ls, s
			return ""
		}
		txns := float64(s.Commits - s0.Commits)
		groups := float64(ls.Groups - l0.Groups)
		return fmt.Sprintf("groups/txn=%.3f KB/group=%.1f logB/txn=%.0f aiB/txn=%.0f bpwaits=%d ckpts=%d ckwaits=%d ckB/txn=%.0f image=%dKB prep=%s live=%dKB lazyalone=%d inline/txn=%.2f early/txn=%.2f seg=%s",
			groups/txns, float64(ls.Bytes-l0.Bytes)/groups/1000, float64(ls.Bytes-l0.Bytes)/txns,
			float64(s.AfterimageBytes-s0.AfterimageBytes)/txns, s.BackpressureWaits-s0.BackpressureWaits,
			s.CheckpointsWritten-s0.CheckpointsWritten, s.CheckpointWaits-s0.CheckpointWaits,
			float64(s.CheckpointBytes-s0.CheckpointBytes)/txns, s.CheckpointBytes/max(s.CheckpointsWritten, 1)>>10,
			s.CheckpointPrepare.Round(time.Millisecond), s.LogLiveBytes>>10, ls.LazyAlone-l0.LazyAlone,
			float64(s.AfterimagesInline-s0.AfterimagesInline)/txns,
			float64(s.IntentionsAppliedEarly-s0.IntentionsAppliedEarly)/txns, extraStats(ls, l0))
	}
}

// keptDB is the database -keep reuses from point to point.
type keptDB struct {
	db  *cruzdb.DB
	l   *seglog.Log
	dir string
}

var (
	keep bool
	kept *keptDB
)

// ckDuty and ckRatio are -duty and -ratio, prefill -prefill.
var (
	ckDuty, ckRatio float64
	prefill         int
)

// profileOut, if set, receives the CPU profile of the first cruzdb point.
var profileOut *os.File

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
	os.Exit(1)
}

// writeBytes is the process's write_bytes (/proc/self/io): bytes it caused
// to be written to storage, counted as pages are dirtied.
func writeBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, ln := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(ln, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// traceOut, if set, receives the execution trace of the first cruzdb point.
var traceOut *os.File

// flushWorkers is -workers: cruzdb Options.FlushWorkers, if above 0.
var flushWorkers int

// memProfile is -memprofile: where the allocation profile goes.
var memProfile string
