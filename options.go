package cruzdb

import (
	"cmp"
	"fmt"
	"log/slog"
	"time"

	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/internal/opt"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/processor"
)

// Options configure a DB. Open copies them, fills in defaults for zero
// fields and validates the result; it never modifies the caller's value.
type Options struct {
	// Log is the shared log to use. When set, the caller owns it: Close does
	// not close it, and Open's path may be "" (no local files). Default: the
	// embedded log in path (seglog; see EmbeddedLogBackend).
	Log log.Log

	// NoSync turns off fsync on the embedded log. For tests only: a crash
	// loses acknowledged commits. Default false.
	NoSync bool

	// CacheBytes bounds the memory held by clean (flushed) tree nodes; the
	// rest are evicted and read back from their afterimages on demand.
	// Default 256 MiB. Reading nodes back also keeps up to 64 MiB of
	// recently read afterimage entries, outside this budget; and nodes that
	// later commits replaced are let go in sweeps, once they are as many as
	// the counted ones, so nodes can take up to about twice the budget
	// (bench/RESULTS.md has the heap measured with the default).
	CacheBytes int64

	// FlushWorkers is how many afterimages are written in parallel. Default
	// 8 x GOMAXPROCS.
	FlushWorkers int

	// FlushSerial writes one afterimage at a time with physical pointers
	// only: the baseline, and the switch that turns parallel flushing off.
	// Default false.
	FlushSerial bool

	// MaxUnflushedBytes bounds the memory of committed but unflushed deltas;
	// past it, commits wait for the flusher. Default 64 MiB.
	MaxUnflushedBytes int64

	// MaxConflictRetries bounds how often Update re-runs its function after
	// a conflict before returning ErrConflict. Default 0: no bound, Update
	// retries (with exponential backoff and jitter) until its context ends;
	// negative means no retries.
	MaxConflictRetries int

	// Logger receives progress reports and problems. Default: discard.
	Logger *slog.Logger

	// ConflictWindow is written to the header of a new database: an
	// intention whose snapshot is more than this many positions old aborts,
	// and tombstones older than this are dropped. Ignored when opening an
	// existing database (the header decides). Default 1<<20.
	ConflictWindow uint64

	// HoleTimeout is how long a hole below the log's tail may stay unwritten
	// before the processor fills it (a dead writer must not stall replay).
	// Default 1s.
	HoleTimeout time.Duration

	// PollInterval is how often replay looks for entries appended by other
	// nodes of a shared log. Default 1ms.
	PollInterval time.Duration

	// FlushPolicy says which nodes of a shared log write an intention's
	// afterimage. Default flusher.PolicyTakeover: the node that appended
	// the intention, or any node once TakeoverDelay has passed without one.
	FlushPolicy flusher.Policy

	// TakeoverDelay: see FlushPolicy. Default 2s.
	TakeoverDelay time.Duration

	// CloseFlushTimeout bounds how long Close waits to flush. Default 30s.
	CloseFlushTimeout time.Duration

	// CheckpointSerial makes checkpoints sequential (seeds/000 §9): while
	// one is prepared and given authority, this DB's commits wait. The
	// authority steps (marker, then trim) are the same either way; only the
	// overlap of the image's preparation with commits goes. Default false.
	CheckpointSerial bool

	// CheckpointLogRatio is the automatic trigger: a checkpoint starts when
	// the log bytes replayed since the newest checkpoint's cut, checkpoint
	// images left out, exceed this many times the size of its image (and
	// CheckpointMinLogBytes). So the live log (that image, then the log
	// after it) stays within about 1+ratio times the image, and about as
	// many image bytes are written as 1/ratio of the other log bytes;
	// commits wait if it grows past about 1+3*ratio times (the background
	// work fell behind). While the newest image is smaller than
	// CheckpointMinLogBytes (a small database) the ratio used is at most 2,
	// which keeps such a database's data directory within ~16x its data.
	// Default 2 (3 wrote 30 % fewer image bytes but let the live log swing
	// over 5.7x instead of 2.6x under uniform overwrite:
	// bench/journal/2026-12-07-session14.md); negative turns automatic
	// checkpoints (and that wait) off.
	// Never time-based.
	CheckpointLogRatio float64

	// CheckpointMinLogBytes is the least log growth (images left out) that
	// triggers an automatic checkpoint. Default 96 KiB (the data directory
	// of cruzd's 1,000-key benchmark then stays within ~16x its data, files
	// included: bench/journal/2026-12-07-image21.md).
	CheckpointMinLogBytes int64

	// CheckpointDuty is the share of the time the writer of a checkpoint's
	// image works (it rests after each chunk in proportion): the image is
	// background work, and commits keep the cores. In (0, 1]; 1 writes as
	// fast as it can. It does not rest while commits are held back because
	// the log outgrew its checkpoints (Stats.CheckpointWaits), nor once
	// the log since the cut has used half the room it has before that (it
	// finishes first). Default 0.25.
	CheckpointDuty float64

	// ApplyAfterSync turns early application off: on a log that says what
	// it ordered before it is durable (log.OrderNotifier: seglog), replay
	// applies a group's intentions while the log syncs them, and publishes
	// their decisions and versions only once the log says they are durable
	// (early.go). With ApplyAfterSync, replay applies them after. Decisions
	// and state are the same either way. Default false.
	ApplyAfterSync bool

	// deltaHook, for tests, sees every delta on the processor goroutine.
	deltaHook func(*processor.Delta)
}

// Header limits written into a new database.
const (
	// DefaultMaxKeySize is the largest key (16 KiB).
	DefaultMaxKeySize = 16 << 10
	// DefaultMaxValueSize is the largest value (8 MiB).
	DefaultMaxValueSize = 8 << 20
)

// DefaultOptions returns the options Open uses for nil. The defaults of the
// parts (flusher, processor) are written once, in those packages.
func DefaultOptions() Options {
	return Options{
		CacheBytes:        flusher.DefaultCacheBytes,
		FlushWorkers:      flusher.DefaultWorkers(),
		MaxUnflushedBytes: flusher.DefaultMaxUnflushedBytes,
		Logger:            slog.New(slog.DiscardHandler),
		ConflictWindow:    1 << 20,
		HoleTimeout:       processor.DefaultHoleTimeout,
		PollInterval:      processor.DefaultPollInterval,
		TakeoverDelay:     flusher.DefaultTakeoverDelay,
		CloseFlushTimeout: 30 * time.Second,

		CheckpointLogRatio:    2,
		CheckpointMinLogBytes: 96 << 10,
		CheckpointDuty:        flusher.DefaultImageDuty,
	}
}

// withDefaults returns a copy of o, defaulted and validated: Open's only
// handling of options. The flusher and processor are given complete
// configs built from the result.
func (o *Options) withDefaults() (Options, error) {
	c := DefaultOptions()
	if o != nil {
		c = *o
		c.ensureDefaults()
	}
	return c, c.validate()
}

// ensureDefaults sets every zero field to its DefaultOptions value.
func (o *Options) ensureDefaults() {
	d := DefaultOptions()
	opt.Default(&o.CacheBytes, d.CacheBytes)
	opt.Default(&o.FlushWorkers, d.FlushWorkers)
	opt.Default(&o.MaxUnflushedBytes, d.MaxUnflushedBytes)
	opt.Default(&o.Logger, d.Logger)
	opt.Default(&o.ConflictWindow, d.ConflictWindow)
	opt.Default(&o.HoleTimeout, d.HoleTimeout)
	opt.Default(&o.PollInterval, d.PollInterval)
	opt.Default(&o.TakeoverDelay, d.TakeoverDelay)
	opt.Default(&o.CloseFlushTimeout, d.CloseFlushTimeout)
	opt.Default(&o.CheckpointLogRatio, d.CheckpointLogRatio)
	opt.Default(&o.CheckpointMinLogBytes, d.CheckpointMinLogBytes)
	opt.Default(&o.CheckpointDuty, d.CheckpointDuty)
}

// validate reports the first field no default can fix.
func (o *Options) validate() error {
	var policy error
	if o.FlushPolicy > flusher.PolicyOriginator {
		policy = fmt.Errorf("%w: FlushPolicy = %v", ErrInvalidOptions, o.FlushPolicy)
	}
	var duty error
	if o.CheckpointDuty < 0 || o.CheckpointDuty > 1 || o.CheckpointDuty != o.CheckpointDuty {
		duty = fmt.Errorf("%w: CheckpointDuty = %v", ErrInvalidOptions, o.CheckpointDuty)
	}
	bad := ErrInvalidOptions
	return cmp.Or(
		opt.Negative(bad, "CacheBytes", o.CacheBytes),
		opt.Negative(bad, "FlushWorkers", o.FlushWorkers),
		opt.Negative(bad, "MaxUnflushedBytes", o.MaxUnflushedBytes),
		opt.Negative(bad, "HoleTimeout", o.HoleTimeout),
		opt.Negative(bad, "PollInterval", o.PollInterval),
		opt.Negative(bad, "TakeoverDelay", o.TakeoverDelay),
		opt.Negative(bad, "CloseFlushTimeout", o.CloseFlushTimeout),
		policy,
		duty,
		opt.Negative(bad, "CheckpointMinLogBytes", o.CheckpointMinLogBytes),
	)
}
