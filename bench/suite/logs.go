package suite

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// Entry kinds as the envelope's type byte says. This mirrors
// internal/entry (offset 0: magic 0xC2 0xDB, offset 3: type; 1 header,
// 2 intention, 3 afterimage, 4 checkpoint), which another module cannot
// import. kindsTest in suite_test.go checks it against real entries.
const (
	kindOther = iota
	kindHeader
	kindIntention
	kindAfterimage
	kindCheckpoint
	numKinds
)

var kindNames = [numKinds]string{"other", "header", "intention", "afterimage", "checkpoint"}

func entryKind(b []byte) int {
	if len(b) < 8 || b[0] != 0xC2 || b[1] != 0xDB || b[3] < 1 || b[3] > 4 {
		return kindOther
	}
	return int(b[3])
}

// countingLog wraps a log.Log and counts what goes through it: appends by
// entry kind (count, bytes, time spent), reads, tails and fills.
type countingLog struct {
	log.Log
	appends    [numKinds]atomic.Uint64
	appendB    [numKinds]atomic.Uint64
	appendNs   [numKinds]atomic.Uint64
	reads      atomic.Uint64
	readKinds  [numKinds]atomic.Uint64
	readB      atomic.Uint64
	readsNotWr atomic.Uint64
	tails      atomic.Uint64
	fills      atomic.Uint64
}

func newCountingLog(l log.Log) *countingLog { return &countingLog{Log: l} }

func (c *countingLog) Append(ctx context.Context, data []byte) (log.Position, error) {
	k := entryKind(data)
	start := time.Now()
	p, err := c.Log.Append(ctx, data)
	if err == nil {
		c.appends[k].Add(1)
		c.appendB[k].Add(uint64(len(data)))
		c.appendNs[k].Add(uint64(time.Since(start)))
	}
	return p, err
}

func (c *countingLog) Read(ctx context.Context, p log.Position) ([]byte, error) {
	c.reads.Add(1)
	b, err := c.Log.Read(ctx, p)
	if err == nil {
		c.readB.Add(uint64(len(b)))
		c.readKinds[entryKind(b)].Add(1)
	} else {
		c.readsNotWr.Add(1)
	}
	return b, err
}

func (c *countingLog) Tail(ctx context.Context) (log.Position, error) {
	c.tails.Add(1)
	return c.Log.Tail(ctx)
}

func (c *countingLog) Fill(ctx context.Context, p log.Position) error {
	c.fills.Add(1)
	return c.Log.Fill(ctx, p)
}

// logCounts is a snapshot of a countingLog's counters.
type logCounts struct {
	appends, appendB, appendNs [numKinds]uint64
	readKinds                  [numKinds]uint64
	reads, readB, tails, fills uint64
}

func (c *countingLog) counts() logCounts {
	var s logCounts
	for k := range numKinds {
		s.appends[k] = c.appends[k].Load()
		s.appendB[k] = c.appendB[k].Load()
		s.appendNs[k] = c.appendNs[k].Load()
		s.readKinds[k] = c.readKinds[k].Load()
	}
	s.reads, s.readB, s.tails, s.fills = c.reads.Load(), c.readB.Load(), c.tails.Load(), c.fills.Load()
	return s
}

func (s logCounts) sub(o logCounts) logCounts {
	for k := range numKinds {
		s.appends[k] -= o.appends[k]
		s.appendB[k] -= o.appendB[k]
		s.appendNs[k] -= o.appendNs[k]
		s.readKinds[k] -= o.readKinds[k]
	}
	s.reads -= o.reads
	s.readB -= o.readB
	s.tails -= o.tails
	s.fills -= o.fills
	return s
}

// meanAppend is the mean time an Append of kind k took.
func (s logCounts) meanAppend(k int) time.Duration {
	if s.appends[k] == 0 {
		return 0
	}
	return time.Duration(s.appendNs[k] / s.appends[k])
}

// gateLog shows a prefix of a log: positions at or beyond limit read as not
// written and the tail is at most limit, until open is called. The replay
// experiment opens a DB on the prefix, then opens the gate and times the
// replay of the rest. Appends (afterimages, once the flusher writes them) go
// through to the wrapped log, landing beyond the gated part.
type gateLog struct {
	log.Log
	limit atomic.Uint64
}

func newGateLog(l log.Log, limit log.Position) *gateLog {
	g := &gateLog{Log: l}
	g.limit.Store(uint64(limit))
	return g
}

func (g *gateLog) open() { g.limit.Store(^uint64(0)) }

func (g *gateLog) Read(ctx context.Context, p log.Position) ([]byte, error) {
	if uint64(p) >= g.limit.Load() {
		return nil, fmt.Errorf("gate: position %d: %w", p, log.ErrNotWritten)
	}
	return g.Log.Read(ctx, p)
}

func (g *gateLog) Tail(ctx context.Context) (log.Position, error) {
	t, err := g.Log.Tail(ctx)
	if err != nil {
		return t, err
	}
	if lim := g.limit.Load(); uint64(t) > lim {
		t = log.Position(lim)
	}
	return t, nil
}

func (g *gateLog) Fill(ctx context.Context, p log.Position) error {
	if uint64(p) >= g.limit.Load() {
		return fmt.Errorf("gate: fill %d: beyond the gate", p)
	}
	return g.Log.Fill(ctx, p)
}

// Close does not close the wrapped log (the experiment owns it).
func (g *gateLog) Close() error { return nil }
