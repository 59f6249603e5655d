package cruzdb

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/startup"
)

// ckLog is a hookLog that also hooks Trim and keeps a copy of every entry
// appended, so the model can replay history the log has trimmed.
type ckLog struct {
	*hookLog
	mu     sync.Mutex
	shadow map[log.Position][]byte
	armed  atomic.Pointer[armed]
}

// armed takes the crash clone at the first operation match accepts.
type armed struct {
	match func(op string, data []byte, phase string) bool
	take  func()
	seen  *atomic.Int64
}

func (c *ckLog) check(op string, data []byte, phase string) {
	if a := c.armed.Load(); a != nil && a.match(op, data, phase) && a.seen.Add(1) == 1 {
		a.take()
	}
}

func newCkLog(seed uint64) *ckLog {
	return &ckLog{hookLog: &hookLog{Log: memlog.New(&memlog.Options{Seed: seed})}, shadow: map[log.Position][]byte{}}
}

func (c *ckLog) keep(p log.Position, data []byte) {
	c.mu.Lock()
	c.shadow[p] = bytes.Clone(data)
	c.mu.Unlock()
}

func (c *ckLog) Append(ctx context.Context, data []byte) (log.Position, error) {
	c.check("append", data, "before")
	p, err := c.hookLog.Append(ctx, data)
	if err == nil {
		c.keep(p, data)
		c.check("append", data, "after")
	}
	return p, err
}

func (c *ckLog) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	pos, err := c.hookLog.AppendBatch(ctx, data)
	if err == nil {
		for i, p := range pos {
			c.keep(p, data[i])
		}
	}
	return pos, err
}

func (c *ckLog) Trim(ctx context.Context, pos log.Position) error {
	c.check("trim", nil, "before")
	err := c.hookLog.Log.Trim(ctx, pos)
	if err == nil {
		c.check("trim", nil, "after")
	}
	return err
}

// history reads position p of clone, falling back on the entries appended
// before a trim.
func (c *ckLog) history(clone *memlog.Log) func(log.Position) ([]byte, error) {
	c.mu.Lock()
	shadow := make(map[log.Position][]byte, len(c.shadow))
	for p, d := range c.shadow {
		shadow[p] = d
	}
	c.mu.Unlock()
	return func(p log.Position) ([]byte, error) {
		data, err := clone.Read(context.Background(), p)
		if errors.Is(err, log.ErrTrimmed) {
			if d, ok := shadow[p]; ok {
				return d, nil
			}
			return nil, log.ErrFilled // a hole or junk when trimmed
		}
		return data, err
	}
}

// verifyCheckpointRecovery reopens the crash clone twice (recovery must be
// deterministic), and checks every acknowledged commit and the whole state
// against the model replay of the log's history (no ghost state).
func verifyCheckpointRecovery(t *testing.T, name string, cl *ckLog, clone *memlog.Log, acked map[string]string) SafePointInfo {
	t.Helper()
	var dumps [2]string
	var safe [2]uint64
	var info SafePointInfo
	for i := range 2 {
		c := clone.CrashClone()
		db, err := Open("", &Options{Log: c, CheckpointLogRatio: -1})
		if err != nil {
			t.Fatalf("%s: reopen: %v", name, err)
		}
		// Open's reads only: the checks below load nodes, and their reads
		// (an entry may be read again once the cache dropped it) say
		// nothing of startup's cost.
		reads := c.Stats().Reads
		if err := checkAcked(db, acked); err != nil {
			db.Close()
			t.Fatalf("%s: %v", name, err)
		}
		dumps[i], safe[i] = dump(t, db), db.SafePoint().Intention
		info = SafePointInfo{SafePoint: db.SafePoint(), Reads: reads}
		want := dumpMap(modelOver(t, cl.history(clone), log.Position(db.SafePoint().Tail), 1<<20))
		db.Close()
		if dumps[i] != want {
			t.Fatalf("%s: state differs from the model replay of the log's history\n got %d bytes\nwant %d bytes", name, len(dumps[i]), len(want))
		}
	}
	if dumps[0] != dumps[1] || safe[0] != safe[1] {
		t.Fatalf("%s: two recoveries of one crash differ (safe points %d, %d)", name, safe[0], safe[1])
	}
	return info
}

// SafePointInfo is what a recovery did.
type SafePointInfo struct {
	startup.SafePoint
	Reads uint64 // log reads by Open and the replay it waits for
}

// newestCut returns the newest cut in l below its tail, and the trim point.
func newestCut(t *testing.T, l *memlog.Log) (cut, trim uint64) {
	ctx := context.Background()
	tail, _ := l.Tail(ctx)
	for p := uint64(tail); p > 0; {
		p--
		data, err := l.Read(ctx, log.Position(p))
		if errors.Is(err, log.ErrTrimmed) {
			return cut, p + 1
		}
		if err == nil && cut == 0 && isCheckpointKind(data, entry.CheckpointCut) {
			cut = p
		}
	}
	return cut, 0
}

// hasMarker reports whether l holds a marker for the cut at cut.
func hasMarker(t *testing.T, l *memlog.Log, cut uint64) bool {
	ctx := context.Background()
	tail, _ := l.Tail(ctx)
	for p := cut + 1; p < uint64(tail); p++ {
		data, err := l.Read(ctx, log.Position(p))
		if err != nil || !isCheckpointKind(data, entry.CheckpointMarker) {
			continue
		}
		_, payload, _ := entry.Decode(p, data)
		if m, err := entry.DecodeMarker(payload); err == nil && m.Cut == cut {
			return true
		}
	}
	return false
}

func isCheckpointKind(data []byte, kind byte) bool {
	typ, payload, err := entry.Decode(0, data)
	if err != nil || typ != entry.TypeCheckpoint {
		return false
	}
	k, err := entry.CheckpointKind(payload)
	return err == nil && k == kind
}

// TestCheckpointCrashBoundaries takes a crash clone at each boundary of a
// checkpoint (seeds/000 §7, adapted) while commits run, and recovers from
// it: after the cut, during preparation (a chunk written, no marker),
// before the marker, after the marker (authority) before the trim, and
// during the trim. Nothing acknowledged is lost, the state is exactly the
// model's, and two recoveries of one crash agree.
func TestCheckpointCrashBoundaries(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	type point struct {
		name   string
		serial bool
		match  func(op string, data []byte, phase string) bool
		// complete: the crashing checkpoint's marker is in the clone.
		complete bool
	}
	appendOf := func(kind byte, phase string) func(string, []byte, string) bool {
		return func(op string, data []byte, ph string) bool {
			return op == "append" && ph == phase && isCheckpointKind(data, kind)
		}
	}
	trim := func(phase string) func(string, []byte, string) bool {
		return func(op string, _ []byte, ph string) bool { return op == "trim" && ph == phase }
	}
	points := []point{
		{"cut-appended", false, appendOf(entry.CheckpointCut, "after"), false},
		{"preparing-chunk-written", false, appendOf(entry.CheckpointChunk, "after"), false},
		{"prepared-marker-not-written", false, appendOf(entry.CheckpointMarker, "before"), false},
		{"marker-written-before-trim", false, appendOf(entry.CheckpointMarker, "after"), true},
		{"trim-starting", false, trim("before"), true},
		{"trim-done", false, trim("after"), true},
		{"serial-chunk-written", true, appendOf(entry.CheckpointChunk, "after"), false},
		{"serial-marker-written", true, appendOf(entry.CheckpointMarker, "after"), true},
	}
	for _, pt := range points {
		t.Run(pt.name, func(t *testing.T) {
			cl := newCkLog(seed)
			db, err := Open("", &Options{Log: cl, CheckpointLogRatio: -1, CheckpointSerial: pt.serial})
			if err != nil {
				t.Fatal(err)
			}
			a := &acks{m: map[string]string{}}
			crashWarmUp(db, a, seed)
			// A first checkpoint and trim, so the crash meets a log that
			// was trimmed before.
			if _, err := db.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			var clone *memlog.Log
			var seen atomic.Int64
			cp := newCrashPoint()
			cl.armed.Store(&armed{match: pt.match, take: func() {
				cp.take(a, func() { clone = cl.Log.CrashClone() })
			}, seen: &seen})
			checkpoint := func() {
				if _, err := db.Checkpoint(context.Background()); err != nil {
					t.Error(err)
				}
			}
			reached := crashRounds(db, a, seed, cp, 10, 15, checkpoint, nil)
			db.Close()
			if !reached {
				t.Fatalf("crash point never reached")
			}
			acked := cp.acked
			cut, trimAt := newestCut(t, clone)
			tail, _ := clone.Tail(context.Background())
			info := verifyCheckpointRecovery(t, pt.name, cl, clone, acked)
			if trimAt == 0 || cut == 0 {
				t.Fatalf("clone has no trim (%d) or no cut (%d)", trimAt, cut)
			}
			// Recovery never consults an incomplete checkpoint. (The clone
			// is taken as the append returns; on a loaded machine the
			// image may be complete by then: the marker in the clone
			// says.)
			if marked := hasMarker(t, clone, cut); !pt.complete && info.Marker != nil && info.Marker.Cut == cut && !marked {
				t.Fatalf("recovered from the checkpoint at %d, whose image was not complete", cut)
			} else if !pt.complete && marked {
				t.Logf("the image of the cut at %d was complete when the clone was taken", cut)
			}
			// Startup reads only above the trim point, scanning back to
			// its safe point and replaying forward (plus the search for
			// the trim point and the header): its cost does not depend on
			// the history below.
			if max := 2*(uint64(tail)-trimAt) + 64; info.Reads > max {
				t.Fatalf("recovery read %d entries; %d are above the trim point %d", info.Reads, uint64(tail)-trimAt, trimAt)
			}
			t.Logf("cut %d, trimmed below %d, tail %d; resumed at %d (checkpoint %v) after %d reads", cut, trimAt, tail, info.Intention, info.Marker != nil, info.Reads)
		})
	}
}
