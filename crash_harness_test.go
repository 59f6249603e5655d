package cruzdb

// The crash harness shared by the crash tests on memlog (crash_test.go),
// on seglog (crash_seglog_test.go) and at checkpoint boundaries
// (checkpoint_crash_test.go): hooks on a log's operations, the work
// crashed into, the crash clone's capture, and the model the recovered
// state must equal.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/log/seglog"
)

// hooks calls a hook around a log's operations, on the calling goroutine
// and outside the log's locks, so a test can take a crash clone at an
// exact boundary. Appends report the entry's type; a batch reports each
// entry's append before and after it, and itself as op "batch".
type hooks struct {
	hook atomic.Pointer[func(op string, typ entry.Type, phase string)]
}

func (h *hooks) call(op string, typ entry.Type, phase string) {
	if f := h.hook.Load(); f != nil {
		(*f)(op, typ, phase)
	}
}

func (h *hooks) setHook(f func(op string, typ entry.Type, phase string)) { h.hook.Store(&f) }

func entryType(data []byte) entry.Type {
	if typ, _, err := entry.Decode(0, data); err == nil {
		return typ
	}
	return 0
}

func (h *hooks) append(ctx context.Context, l log.Log, data []byte) (log.Position, error) {
	typ := entryType(data)
	h.call("append", typ, "before")
	p, err := l.Append(ctx, data)
	if err == nil {
		h.call("append", typ, "after")
	}
	return p, err
}

func (h *hooks) appendBatch(ctx context.Context, l log.BatchAppender, data [][]byte) ([]log.Position, error) {
	for _, d := range data {
		h.call("append", entryType(d), "before")
	}
	h.call("batch", 0, "before")
	pos, err := l.AppendBatch(ctx, data)
	if err == nil {
		h.call("batch", 0, "after")
		for _, d := range data {
			h.call("append", entryType(d), "after")
		}
	}
	return pos, err
}

func (h *hooks) read(ctx context.Context, l log.Log, pos log.Position) ([]byte, error) {
	h.call("read", 0, "before")
	return l.Read(ctx, pos)
}

// readRange is a read too (replay reads a prefix of every entry first).
func (h *hooks) readRange(ctx context.Context, l log.RangeReader, pos log.Position, off, n int) ([]byte, int, error) {
	h.call("read", 0, "before")
	return l.ReadRange(ctx, pos, off, n)
}

func (h *hooks) fill(ctx context.Context, l log.Log, pos log.Position) error {
	h.call("fill", 0, "before")
	err := l.Fill(ctx, pos)
	h.call("fill", 0, "after")
	return err
}

// hookLog is a memlog with hooks. The memlog's other methods (CrashClone)
// stay visible.
type hookLog struct {
	*memlog.Log
	hooks
}

func (h *hookLog) Append(ctx context.Context, data []byte) (log.Position, error) {
	return h.append(ctx, h.Log, data)
}

func (h *hookLog) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	return h.appendBatch(ctx, h.Log, data)
}

func (h *hookLog) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	return h.read(ctx, h.Log, pos)
}

func (h *hookLog) Fill(ctx context.Context, pos log.Position) error { return h.fill(ctx, h.Log, pos) }

func (h *hookLog) ReadRange(ctx context.Context, pos log.Position, off, n int) ([]byte, int, error) {
	return h.readRange(ctx, h.Log, pos, off, n)
}

// segHookLog is a seglog with hooks. The seglog's other methods
// (WaitTail, CopyTo) stay visible.
type segHookLog struct {
	*seglog.Log
	hooks
}

func (h *segHookLog) Append(ctx context.Context, data []byte) (log.Position, error) {
	return h.append(ctx, h.Log, data)
}

func (h *segHookLog) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	return h.appendBatch(ctx, h.Log, data)
}

func (h *segHookLog) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	return h.read(ctx, h.Log, pos)
}

func (h *segHookLog) Fill(ctx context.Context, pos log.Position) error {
	return h.fill(ctx, h.Log, pos)
}

func (h *segHookLog) ReadRange(ctx context.Context, pos log.Position, off, n int) ([]byte, int, error) {
	return h.readRange(ctx, h.Log, pos, off, n)
}

// acks records acknowledged writes of unique keys.
type acks struct {
	mu sync.Mutex
	m  map[string]string
}

func (a *acks) add(k, v string) {
	a.mu.Lock()
	a.m[k] = v
	a.mu.Unlock()
}

func (a *acks) snapshot() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := make(map[string]string, len(a.m))
	for k, v := range a.m {
		c[k] = v
	}
	return c
}

// crashWork runs n transactions per writer: a unique acknowledged key each,
// plus reads, scans and deletes on shared keys so decisions matter.
func crashWork(db *DB, a *acks, writer, n int, seed uint64) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, uint64(writer)))
	for i := range n {
		k, v := fmt.Sprintf("ack-%d-%04d", writer, i), fmt.Sprintf("v%d", r.IntN(1000))
		err := db.Update(ctx, func(tx *Txn) error {
			s := fmt.Appendf(nil, "shared%d", r.IntN(8))
			if _, err := tx.Get(s); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			switch r.IntN(4) {
			case 0:
				tx.Delete(s)
			case 1:
				for range tx.Range([]byte("shared"), []byte("shared5")) {
				}
				fallthrough
			default:
				tx.Put(s, []byte(k))
			}
			return tx.Put([]byte(k), []byte(v))
		})
		if err == nil {
			a.add(k, v)
		}
	}
}

// crashWarmUp gives a database some history before a crash point is
// armed: writers 0 and 1, 30 transactions each.
func crashWarmUp(db *DB, a *acks, seed uint64) {
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); crashWork(db, a, w, 30, seed) }()
	}
	wg.Wait()
}

// crashPoint captures one crash: the acknowledged writes first (an
// acknowledgement after the clone is not required), then the clone.
type crashPoint struct {
	once  sync.Once
	took  chan struct{}
	acked map[string]string
}

func newCrashPoint() *crashPoint { return &crashPoint{took: make(chan struct{})} }

// take captures the crash the first time it is called: clone copies the
// log as the crash leaves it.
func (c *crashPoint) take(a *acks, clone func()) {
	c.once.Do(func() {
		c.acked = a.snapshot()
		clone()
		close(c.took)
	})
}

func (c *crashPoint) reached() bool {
	select {
	case <-c.took:
		return true
	default:
		return false
	}
}

// crashRounds works on db in rounds until the crash point is reached, at
// most rounds times: each round two new writers run n transactions each,
// alongside during (if not nil), and then after runs (if not nil). Some
// points (an afterimage riding with an intention) depend on timing, hence
// rounds instead of a fixed amount of work. It reports whether the point
// was reached.
func crashRounds(db *DB, a *acks, seed uint64, cp *crashPoint, rounds, n int, during, after func()) bool {
	for round := range rounds {
		var wg sync.WaitGroup
		for w := 2 + 2*round; w < 4+2*round; w++ {
			wg.Add(1)
			go func() { defer wg.Done(); crashWork(db, a, w, n, seed) }()
		}
		if during != nil {
			wg.Add(1)
			go func() { defer wg.Done(); during() }()
		}
		wg.Wait()
		if after != nil {
			after()
		}
		if cp.reached() {
			return true
		}
	}
	return false
}

// checkAcked returns an error naming an acknowledged write db does not
// hold, if any.
func checkAcked(db *DB, acked map[string]string) error {
	return db.View(context.Background(), func(tx *Txn) error {
		for k, v := range acked {
			got, err := tx.Get([]byte(k))
			if err != nil || string(got) != v {
				return fmt.Errorf("acknowledged %s=%s lost: got %q, %v", k, v, got, err)
			}
		}
		return nil
	})
}

// modelReplay replays the intentions of l below tail with the conflict rule
// written plainly over maps: the reference the database must agree with.
func modelReplay(t *testing.T, l log.Log, tail log.Position) map[string]string {
	t.Helper()
	h, err := readOrWriteHeader(context.Background(), l, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	read := func(p log.Position) ([]byte, error) { return l.Read(context.Background(), p) }
	return modelOver(t, read, tail, h.ConflictWindow)
}

// modelOver is modelReplay over a read function (which reports junk, and
// entries it cannot know, as log.ErrFilled) and a conflict window.
func modelOver(t *testing.T, read func(log.Position) ([]byte, error), tail log.Position, window uint64) map[string]string {
	t.Helper()
	vals := map[string]string{}
	last := map[string]uint64{} // last write (put or delete) per key
	for p := uint64(1); p < uint64(tail); p++ {
		data, err := read(log.Position(p))
		if errors.Is(err, log.ErrFilled) {
			continue
		}
		if err != nil {
			t.Fatalf("model: read %d: %v", p, err)
		}
		in, err := entry.DecodeIntentionEntry(p, data)
		if errors.Is(err, entry.ErrWrongType) {
			continue
		}
		if err != nil {
			t.Fatalf("model: %v", err)
		}
		if p-in.Snapshot > window || in.Snapshot >= p {
			continue
		}
		abort := false
		for _, k := range in.Reads {
			if last[string(k)] > in.Snapshot {
				abort = true
			}
		}
		for _, r := range in.Ranges {
			for k, q := range last {
				if q > in.Snapshot && (r.Lo == nil || k >= string(r.Lo)) && (r.Hi == nil || k < string(r.Hi)) {
					abort = true
				}
			}
		}
		if abort {
			continue
		}
		for _, op := range in.Ops {
			last[string(op.Key)] = p
			if op.Value == nil && op.Kind != 1 {
				delete(vals, string(op.Key))
			} else {
				vals[string(op.Key)] = string(op.Value)
			}
		}
	}
	return vals
}

func dumpMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, m[k])
	}
	return b.String()
}
