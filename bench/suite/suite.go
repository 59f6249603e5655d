// Package suite holds cruzdb's experiments as a library: each experiment
// runs cruzdb (and, where it makes sense, bbolt, Pebble and Badger doing the
// same work in the same process), prints a Markdown table, and writes CSV and
// SVG files. The command in the parent directory (`go run . <experiment>`)
// is a thin wrapper around Run.
//
// Sizes come in three modes: the full run (the figures in RESULTS.md), Quick
// (a seconds-long smoke run for CI) and Tiny (the smallest run that still
// exercises every code path, for the package's own test).
package suite

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Config configures a run of one or more experiments.
type Config struct {
	// Quick makes every experiment a seconds-long smoke run.
	Quick bool
	// Tiny makes every experiment as small as possible (tests).
	Tiny bool
	// Out is the directory for CSV, SVG and machine.md (created if missing).
	Out string
	// DataDir is where on-disk databases are created (a temporary directory
	// inside it per database, removed afterwards). Default: os.TempDir().
	DataDir string
	// Runs repeats every measurement; tables report the median and spread.
	Runs int
	// Seed seeds every random choice of keys and values.
	Seed uint64
	// Stdout receives the Markdown tables; Progress the progress lines.
	Stdout, Progress io.Writer
	// CruzdBin is a prebuilt cruzd binary for the resp experiment; empty
	// means build ../cmd/cruzd from the main module.
	CruzdBin string
	// MainDir is the main module's directory (for building cruzd and
	// finding bench/resp.sh). Default "..".
	MainDir string
	// InsideKeys, when not empty, makes the checkpoint experiment run only
	// its inside-vs-outside part (checkpoint_inside), for these tree sizes
	// instead of the mode's. Default: empty (the whole experiment).
	InsideKeys []int
	// InsideLogs names the logs of the inside-vs-outside part (seglog,
	// memlog). Default: both.
	InsideLogs []string
	// InsideProfile, when not empty, is a path prefix: the inside part
	// writes a CPU profile of each checkpoint (PREFIX-N-LOG-ckptK.prof) and of
	// the stretch after it (PREFIX-N-LOG-afterK.prof), N the tree size.
	// Default: empty (none). Not with a whole-run CPU profile.
	InsideProfile string
}

// Experiment is one named experiment.
type Experiment struct {
	Name string
	Doc  string
	Run  func(*Env) error
}

// Experiments lists every experiment in the order `all` runs them.
var Experiments = []Experiment{
	{"flush", "serial vs parallel flush: afterimages/s vs workers and append latency", runFlush},
	{"replay", "processor replay rate (intentions/s) and allocations per intention vs tree size", runReplay},
	{"commit", "durable 1-put transactions with 1/16/64 clients vs bbolt, Pebble, Badger and fdatasync", runCommit},
	{"read", "point reads and 100-key range scans vs peers, warm and with a small cache", runRead},
	{"startup", "open time and log reads vs history length", runStartup},
	{"resp", "cruzd vs redis-server with redis-benchmark", runResp},
	{"workload", "YCSB-style A, B, C, F with a zipfian key chooser vs peers", runWorkload},
	{"logappend", "log appends/s with fdatasync: seglog, boltlog, raft-wal, tidwall/wal; bytes written per byte appended", runLogAppend},
	{"commitlogs", "durable 1-put transactions, cruzdb on seglog and on boltlog vs bbolt, Pebble, Badger, interleaved", runCommitLogs},
	{"etcd", "etcdlog appends vs raw etcd Puts (1/16/64), 1-3 nodes on one log (appends and cruzdb commits), follower replay lag", runEtcd},
	{"checkpoint", "live log and directory size under uniform overwrite; commits inside vs outside a checkpoint; checkpoint time vs tree size", runCheckpoint},
	{"checkpoint-resp", "cruzd's data directory (du) after each of 5 rounds of redis-benchmark -t set -r 1000", runCheckpointResp},
}

// builderCacheBytes is the CacheBytes of nodes that build a log or replay
// one for a measurement: large enough that the tree stays in memory, so that
// replay figures do not include node loads. (An earlier engine also let
// CachedBytes grow with every replaced version and stalled replay once it
// passed the 256 MiB default; commit 8d35d55 fixed that.)
const builderCacheBytes = 16 << 30

const builderCacheWhy = "large enough that the tree stays in memory"

// Lookup returns the experiment called name.
func Lookup(name string) (Experiment, bool) {
	for _, e := range Experiments {
		if e.Name == name {
			return e, true
		}
	}
	return Experiment{}, false
}

// Names returns the experiments' names.
func Names() []string {
	var n []string
	for _, e := range Experiments {
		n = append(n, e.Name)
	}
	return n
}

// Env is what an experiment runs with: the configuration, output helpers
// and the machine description.
type Env struct {
	Config
	exp     string
	Machine *Machine
	written []string
}

// NewEnv checks cfg, fills in defaults, creates the output directory and
// describes the machine (writing Out/machine.md and printing it once).
func NewEnv(cfg Config) (*Env, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 1
	}
	if cfg.Out == "" {
		cfg.Out = "results"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = os.TempDir()
	}
	if cfg.MainDir == "" {
		cfg.MainDir = ".."
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	e := &Env{Config: cfg}
	// 256 MiB is about a 1M-key tree (the replay experiment's target size).
	m, err := DescribeMachine(cfg.DataDir, e.pick(time.Second, 200*time.Millisecond, 50*time.Millisecond),
		pick(e, 256<<20, 256<<20, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("describe machine: %w", err)
	}
	e.Machine = m
	md := m.Markdown()
	if err := os.WriteFile(filepath.Join(cfg.Out, "machine.md"), []byte(md), 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintln(cfg.Stdout, md)
	return e, nil
}

// Run runs the named experiments in order. It stops at the first error.
func (e *Env) Run(names ...string) error {
	for _, n := range names {
		x, ok := Lookup(n)
		if !ok {
			return fmt.Errorf("unknown experiment %q (have %s)", n, strings.Join(Names(), ", "))
		}
		e.exp = x.Name
		start := time.Now()
		e.progressf("start: %s", x.Doc)
		if err := x.Run(e); err != nil {
			return fmt.Errorf("%s: %w", x.Name, err)
		}
		e.progressf("done in %s", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Written returns the files written so far, relative to nothing (as given).
func (e *Env) Written() []string { return append([]string(nil), e.written...) }

// pick chooses a size by mode.
func pick[T any](e *Env, full, quick, tiny T) T {
	switch {
	case e.Tiny:
		return tiny
	case e.Quick:
		return quick
	}
	return full
}

func (e *Env) pick(full, quick, tiny time.Duration) time.Duration { return pick(e, full, quick, tiny) }

// mode names the size mode for table captions.
func (e *Env) mode() string {
	switch {
	case e.Tiny:
		return "tiny"
	case e.Quick:
		return "quick"
	}
	return "full"
}

func (e *Env) progressf(format string, args ...any) {
	fmt.Fprintf(e.Progress, "[%s %s] %s\n", time.Now().Format("15:04:05"), e.exp, fmt.Sprintf(format, args...))
}

// Progress counts steps of a long experiment on the progress writer.
type Progress struct {
	e     *Env
	n, of int
	start time.Time
}

func (e *Env) steps(of int) *Progress { return &Progress{e: e, of: of, start: time.Now()} }

// Step reports the start of the next step.
func (p *Progress) Step(format string, args ...any) {
	p.n++
	eta := ""
	if p.n > 1 {
		el := time.Since(p.start)
		left := el / time.Duration(p.n-1) * time.Duration(p.of-p.n+1)
		eta = fmt.Sprintf(" (elapsed %s, ~%s left)", el.Round(time.Second), left.Round(time.Second))
	}
	p.e.progressf("%d/%d %s%s", p.n, p.of, fmt.Sprintf(format, args...), eta)
}

// tempDir makes a fresh directory for one database under DataDir.
func (e *Env) tempDir(name string) (string, func(), error) {
	d, err := os.MkdirTemp(e.DataDir, "cruzbench-"+name+"-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// Sample is a measurement repeated Runs times.
type Sample struct {
	Values []float64
}

// Median of the values (0 for none).
func (s Sample) Median() float64 {
	if len(s.Values) == 0 {
		return 0
	}
	v := append([]float64(nil), s.Values...)
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Min and Max of the values.
func (s Sample) Min() float64 {
	m := 0.0
	for i, v := range s.Values {
		if i == 0 || v < m {
			m = v
		}
	}
	return m
}

// Max of the values.
func (s Sample) Max() float64 {
	m := 0.0
	for i, v := range s.Values {
		if i == 0 || v > m {
			m = v
		}
	}
	return m
}

// Spread is (max-min)/median as a fraction; 0 with fewer than two values.
func (s Sample) Spread() float64 {
	med := s.Median()
	if len(s.Values) < 2 || med == 0 {
		return 0
	}
	return (s.Max() - s.Min()) / med
}

func one(v float64) Sample { return Sample{Values: []float64{v}} }

// repeat runs f Runs times and collects its values.
func (e *Env) repeat(f func() (float64, error)) (Sample, error) {
	var s Sample
	for i := 0; i < e.Runs; i++ {
		v, err := f()
		if err != nil {
			return s, err
		}
		s.Values = append(s.Values, v)
	}
	return s, nil
}

// repeatN is repeat for a measurement with several values per run.
func (e *Env) repeatN(n int, f func() ([]float64, error)) ([]Sample, error) {
	out := make([]Sample, n)
	for i := 0; i < e.Runs; i++ {
		v, err := f()
		if err != nil {
			return out, err
		}
		if len(v) != n {
			return out, errors.New("repeatN: wrong number of values")
		}
		for j := range v {
			out[j].Values = append(out[j].Values, v[j])
		}
	}
	return out, nil
}

// noCheckpoints turns automatic checkpoints off (cruzdb.Options
// CheckpointLogRatio). The flush and replay experiments copy a builder's
// whole log from position 0 and measure flushing or replay alone, so their
// logs must keep their history and their nodes must not checkpoint.
const noCheckpoints = -1
