package cruzdb

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// appendLog keeps a copy of every entry appended through it, so that a test
// can read the whole history after the database trimmed the log.
type appendLog struct {
	log.Log
	mu      sync.Mutex
	entries map[log.Position][]byte
}

func (l *appendLog) Append(ctx context.Context, data []byte) (log.Position, error) {
	p, err := l.Log.Append(ctx, data)
	if err == nil {
		l.mu.Lock()
		l.entries[p] = bytes.Clone(data)
		l.mu.Unlock()
	}
	return p, err
}

// TestAutomaticCheckpointOnlyWhenDue: every automatic checkpoint's cut
// follows more log bytes since the cut before it than the trigger
// (CheckpointLogRatio times the newest image before it, and
// CheckpointMinLogBytes), counted as the database counts them (every entry
// replayed since the previous cut, images included). The trigger wakes the
// checkpoint loop once for each entry replayed past it until the cut is
// replayed; a wake left over from that burst must not start another
// checkpoint when the one it asked for is done (before the fix, every
// other cut came a few commits after the one before, about an image's
// bytes, half the trigger).
func TestAutomaticCheckpointOnlyWhenDue(t *testing.T) {
	const minLog = 32 << 10
	l := &appendLog{Log: memlog.New(nil), entries: map[log.Position][]byte{}}
	db, err := Open("", &Options{Log: l, CheckpointMinLogBytes: minLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	val := bytes.Repeat([]byte("v"), 100)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 600 {
				if err := db.Update(ctx, func(tx *Txn) error {
					return tx.Put(fmt.Appendf(nil, "k%04d", (i*4+c)%1500), val)
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := db.Stats()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	tail, err := l.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ratio := DefaultOptions().CheckpointLogRatio
	var since, lastImage int64
	var lastCut uint64
	cuts, firstCut := 0, true
	for p := log.Position(1); p < tail; p++ {
		data, ok := l.entries[p]
		if !ok {
			continue // junk
		}
		typ, payload, err := entry.Decode(uint64(p), data)
		if err != nil {
			t.Fatal(err)
		}
		kind := byte(0)
		if typ == entry.TypeCheckpoint {
			if kind, err = entry.CheckpointKind(payload); err != nil {
				t.Fatal(err)
			}
		}
		if kind == entry.CheckpointCut {
			limit := max(int64(minLog), int64(ratio*float64(lastImage)))
			if !firstCut && since <= limit {
				t.Errorf("cut at %d after %d bytes since the cut before; the trigger was %d (image %d)", p, since, limit, lastImage)
			}
			firstCut = false
			cuts++
			since = 0
			continue
		}
		since += int64(len(data))
		if kind == entry.CheckpointMarker {
			m, err := entry.DecodeMarker(payload)
			if err != nil {
				t.Fatal(err)
			}
			if m.Cut > lastCut {
				lastCut, lastImage = m.Cut, int64(m.Bytes)
			}
		}
	}
	t.Logf("%d cuts, %d automatic checkpoints", cuts, st.AutoCheckpoints)
	if cuts < 5 {
		t.Fatalf("%d cuts: the test needs several automatic checkpoints", cuts)
	}
}
