package flusher

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

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
	bad := func(field string, v any) error {
		return fmt.Errorf("%w: %s = %v", ErrInvalidOptions, field, v)
	}
	switch {
	case o.Log == nil:
		return fmt.Errorf("%w: a Log is required", ErrInvalidOptions)
	case o.Workers < 0:
		return bad("Workers", o.Workers)
	case o.MaxUnflushedBytes < 0:
		return bad("MaxUnflushedBytes", o.MaxUnflushedBytes)
	case o.CacheBytes < 0:
		return bad("CacheBytes", o.CacheBytes)
	case o.TakeoverDelay < 0:
		return bad("TakeoverDelay", o.TakeoverDelay)
	case o.IndexEntries < 0:
		return bad("IndexEntries", o.IndexEntries)
	case o.HoleTimeout < 0:
		return bad("HoleTimeout", o.HoleTimeout)
	case o.Policy > PolicyOriginator:
		return bad("Policy", o.Policy)
	case o.ImageDuty < 0 || o.ImageDuty > 1 || o.ImageDuty != o.ImageDuty:
		return bad("ImageDuty", o.ImageDuty)
	}
	if o.ImageDuty == 0 {
		o.ImageDuty = DefaultImageDuty
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers()
	}
	if o.MaxUnflushedBytes == 0 {
		o.MaxUnflushedBytes = DefaultMaxUnflushedBytes
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.TakeoverDelay == 0 {
		o.TakeoverDelay = DefaultTakeoverDelay
	}
	if o.IndexEntries == 0 {
		o.IndexEntries = DefaultIndexEntries
	}
	if o.HoleTimeout == 0 {
		o.HoleTimeout = processor.DefaultHoleTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
