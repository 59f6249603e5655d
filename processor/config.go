package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Config, the one place they are written: cruzdb.DefaultOptions
// and the flusher refer to these.
const (
	// DefaultHoleTimeout: long enough that a live writer's append is not
	// filled over, short enough that a dead one stalls replay briefly.
	DefaultHoleTimeout = time.Second
	// DefaultPollInterval bounds how late a node sees another node's append.
	DefaultPollInterval = time.Millisecond
	// DefaultReadAhead is how many decoded entries the reader may run ahead.
	DefaultReadAhead = 256
)

// ErrInvalidConfig: Start was given a Config it cannot use.
var ErrInvalidConfig = errors.New("processor: invalid config")

// check rejects a Config Start cannot use (a missing required field, a
// negative duration or size) and resolves zero fields to the named defaults,
// on Start's own copy. cruzdb passes complete configs.
func (cfg *Config) check() error {
	switch {
	case cfg.Log == nil || cfg.State == nil || cfg.OnEvent == nil:
		return fmt.Errorf("%w: Log, State and OnEvent are required", ErrInvalidConfig)
	case cfg.HoleTimeout < 0:
		return fmt.Errorf("%w: HoleTimeout %v is negative", ErrInvalidConfig, cfg.HoleTimeout)
	case cfg.PollInterval < 0:
		return fmt.Errorf("%w: PollInterval %v is negative", ErrInvalidConfig, cfg.PollInterval)
	case cfg.ReadAhead < 0:
		return fmt.Errorf("%w: ReadAhead %d is negative", ErrInvalidConfig, cfg.ReadAhead)
	}
	if cfg.HoleTimeout == 0 {
		cfg.HoleTimeout = DefaultHoleTimeout
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.ReadAhead == 0 {
		cfg.ReadAhead = DefaultReadAhead
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
