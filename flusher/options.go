package flusher

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/cruzlog/cruzdb/internal/opt"
	"github.com/cruzlog/cruzdb/processor"
)

// Defaults of Options, the one place they are written (cruzdb's
// DefaultOptions refers to these).
const (
	DefaultMaxUnflushedBytes = 64 << 20
	DefaultCacheBytes        = 256 << 20
	DefaultTakeoverDelay     = 2 * time.Second
	DefaultIndexEntries      = 1 << 20
	// DefaultImageDuty lets a checkpoint image's writer work a quarter of
	// the time: on two cores, an unpaced image of a 300K-key tree cut
	// commits to a fifth of their rate while it was written.
	DefaultImageDuty = 0.25
)

// DefaultWorkers is 8 x GOMAXPROCS: appends wait on the log, not the CPU,
// so more workers than cores keep more appends in flight.
func DefaultWorkers() int { return 8 * runtime.GOMAXPROCS(0) }

// ErrInvalidOptions: New was given Options it cannot use.
var ErrInvalidOptions = errors.New("flusher: invalid options")

// check rejects Options New cannot use (no Log, a negative size or
// duration, an unknown policy) and resolves zero fields to the named
// defaults, on New's own copy. cruzdb passes complete options.
func (o *Options) check() error {
	if o.Log == nil {
		return fmt.Errorf("%w: a Log is required", ErrInvalidOptions)
	}
	var policy, duty error
	if o.Policy > PolicyOriginator {
		policy = fmt.Errorf("%w: Policy = %v", ErrInvalidOptions, o.Policy)
	}
	if o.ImageDuty < 0 || o.ImageDuty > 1 || o.ImageDuty != o.ImageDuty {
		duty = fmt.Errorf("%w: ImageDuty = %v", ErrInvalidOptions, o.ImageDuty)
	}
	bad := ErrInvalidOptions
	if err := cmp.Or(
		opt.Negative(bad, "Workers", o.Workers),
		opt.Negative(bad, "MaxUnflushedBytes", o.MaxUnflushedBytes),
		opt.Negative(bad, "CacheBytes", o.CacheBytes),
		opt.Negative(bad, "TakeoverDelay", o.TakeoverDelay),
		opt.Negative(bad, "IndexEntries", o.IndexEntries),
		opt.Negative(bad, "HoleTimeout", o.HoleTimeout),
		policy,
		duty,
	); err != nil {
		return err
	}
	opt.Default(&o.ImageDuty, DefaultImageDuty)
	opt.Default(&o.Workers, DefaultWorkers())
	opt.Default(&o.MaxUnflushedBytes, DefaultMaxUnflushedBytes)
	opt.Default(&o.CacheBytes, DefaultCacheBytes)
	opt.Default(&o.TakeoverDelay, DefaultTakeoverDelay)
	opt.Default(&o.IndexEntries, DefaultIndexEntries)
	opt.Default(&o.HoleTimeout, processor.DefaultHoleTimeout)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
