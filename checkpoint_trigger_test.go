package cruzdb

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
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
// CheckpointMinLogBytes), counted as the option says: every entry since the
// previous cut but checkpoint images (chunks and markers). The images here
// are soon large (1,500 keys), so that the ratio sets the trigger after the
// first checkpoints. It fails if the trigger counts
// the images' own bytes (a cut then follows about one image less of new log
// than the trigger), and if a stale wake of the automatic loop starts a
// checkpoint as soon as the one before is done (replay wakes the loop once
// for each entry past the trigger until the cut is replayed; before the
// loop checked the growth again, every other cut came a few commits after
// the one before).
func TestAutomaticCheckpointOnlyWhenDue(t *testing.T) {
	const minLog = 32 << 10
	h, st := runTriggerWorkload(t, minLog, 4, 600, 1500, 1)
	t.Logf("%d cuts, %d automatic checkpoints, %d bytes of log but images", h.cuts, st.AutoCheckpoints, h.grown)
	if h.cuts < 5 {
		t.Fatalf("%d cuts: the test needs several automatic checkpoints", h.cuts)
	}
}

// runTriggerWorkload runs writers x each puts of 100-byte values over keys
// keys with automatic checkpoints triggered by minLog bytes of new log, and
// returns the log's checkpoint history and the DB's stats. With rounds > 1
// the puts come in that many rounds, each begun once no checkpoint is in
// progress, so that how many checkpoints the trigger starts does not depend
// on how fast they finish on a loaded machine.
func runTriggerWorkload(t *testing.T, minLog int64, writers, each, keys, rounds int) (triggerHistory, Stats) {
	t.Helper()
	l := &appendLog{Log: memlog.New(nil), entries: map[log.Position][]byte{}}
	db, err := Open("", &Options{Log: l, CheckpointMinLogBytes: minLog})
	if err != nil {
		t.Fatal(err)
	}
	for r := range rounds {
		if r > 0 {
			testutil.WaitFor(t, "the checkpoint in progress", testutil.WaitLong, func() bool { return !db.Stats().CheckpointInProgress })
		}
		putConcurrently(t, db, writers, each/rounds, keys, bytes.Repeat([]byte("v"), 100))
	}
	st := db.Stats()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return scanTriggerHistory(t, l, minLog), st
}

// TestAutomaticCheckpointCount counts the automatic checkpoints of a fixed
// workload whose image is far below CheckpointMinLogBytes (50 keys), so
// that the trigger is CheckpointMinLogBytes of new log: the checkpoints the
// trigger started are at most as many as the log's bytes (images left out)
// over it, plus one. Counting the images' bytes toward the trigger starts
// them early (and fails), and so would a checkpoint started at once after
// another (a stale wake, or a follow-up checkpoint as this package made
// until bench/journal/2026-12-07-image21.md).
func TestAutomaticCheckpointCount(t *testing.T) {
	const minLog = 32 << 10
	h, st := runTriggerWorkload(t, minLog, 2, 500, 50, 20)
	most := uint64(h.grown/minLog) + 1
	due := uint64(h.cuts)
	t.Logf("%d automatic checkpoints (%d cuts) for %d bytes of log but images; the largest image %d bytes; at most %d due", st.AutoCheckpoints, h.cuts, h.grown, h.largestImage, most)
	if h.largestImage*smallImageRatio >= minLog {
		t.Fatalf("an image of %d bytes: the ratio, not CheckpointMinLogBytes, set the trigger; the test needs a smaller tree", h.largestImage)
	}
	if due < 5 {
		t.Fatalf("%d checkpoints due: the test needs several", due)
	}
	if due > most {
		t.Fatalf("%d automatic checkpoints due for %d bytes of log (images left out) with a trigger of %d bytes: at most %d", due, h.grown, minLog, most)
	}
}

// putConcurrently runs clients goroutines of n one-put transactions each
// over keys keys, and fails the test on an error.
func putConcurrently(t *testing.T, db *DB, clients, n, keys int, val []byte) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := db.Update(ctx, func(tx *Txn) error {
					return tx.Put(fmt.Appendf(nil, "k%04d", (i*clients+c)%keys), val)
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
}

// triggerHistory is what scanTriggerHistory found.
type triggerHistory struct {
	cuts                int
	grown, largestImage int64 // log bytes but images'; the largest image
}

// scanTriggerHistory replays the whole history of l the way the automatic
// trigger counts it (every entry since the previous cut but checkpoint
// chunks and markers) and reports every cut after the first that came at
// or below the trigger in force (CheckpointLogRatio times the newest
// confirmed image, at most smallImageRatio times while it is smaller than
// minLog, and minLog).
func scanTriggerHistory(t *testing.T, l *appendLog, minLog int64) triggerHistory {
	t.Helper()
	tail, err := l.Tail(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ratio := DefaultOptions().CheckpointLogRatio
	var h triggerHistory
	var grown, lastImage int64
	var lastImageCut uint64
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
		switch kind {
		case entry.CheckpointCut:
			r := ratio
			if lastImage < minLog {
				r = min(r, smallImageRatio) // a small database's cap (autoLimit)
			}
			limit := max(minLog, int64(r*float64(lastImage)))
			if h.cuts > 0 && grown <= limit {
				t.Errorf("cut at %d after %d bytes (images left out) since the cut before; the trigger was %d (image %d)", p, grown, limit, lastImage)
			}
			h.cuts++
			grown = 0 // the cut resets the count (its own bytes are counted before it)
			h.grown += int64(len(data))
		case entry.CheckpointMarker:
			m, err := entry.DecodeMarker(payload)
			if err != nil {
				t.Fatal(err)
			}
			if m.Cut > lastImageCut {
				lastImageCut, lastImage = m.Cut, int64(m.Bytes)
			}
			h.largestImage = max(h.largestImage, int64(m.Bytes))
		case entry.CheckpointChunk:
		default:
			grown += int64(len(data))
			h.grown += int64(len(data))
		}
	}
	return h
}

// TestTriggerLeavesImagesOut: the trigger's arithmetic on a DB whose
// processor is not running (countReplayed, autoDue and the hold's room
// called directly). Chunks and markers of an image count toward the live
// log (Stats.LogLiveBytes, the hold while a checkpoint is under way) but not
// toward the trigger: any number of image bytes since the cut neither wakes
// the automatic loop nor makes it due; the entries that are not images do,
// once they pass CheckpointMinLogBytes (or CheckpointLogRatio times the
// newest image).
func TestTriggerLeavesImagesOut(t *testing.T) {
	o, err := (&Options{CheckpointMinLogBytes: 10_000, CheckpointLogRatio: 2}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	db := &DB{opts: o}
	db.ck.init()
	chunk := processor.Event{Size: 4_000, Checkpoint: &processor.CheckpointEntry{Kind: entry.CheckpointChunk}}
	marker := processor.Event{Size: 100, Checkpoint: &processor.CheckpointEntry{Kind: entry.CheckpointMarker}}
	commit := processor.Event{Size: 1_000}
	woken := func() bool {
		select {
		case <-db.ck.auto:
			return true
		default:
			return false
		}
	}
	for range 10 {
		db.countReplayed(chunk)
	}
	db.countReplayed(marker)
	if woken() || db.autoDue() {
		t.Fatalf("40,100 bytes of image since the cut woke the automatic loop (trigger %d, images left out)", db.autoLimit())
	}
	if got := db.ck.sinceCut.Load(); got != 40_100 {
		t.Fatalf("bytes since the cut %d, want 40,100 (images count toward the live log)", got)
	}
	if got := db.liveBytes(); got != 40_100 {
		t.Fatalf("live bytes %d, want 40,100", got)
	}
	for i := range 10 {
		db.countReplayed(commit)
		if woken() || db.autoDue() {
			t.Fatalf("woken after %d bytes of commits (trigger %d)", (i+1)*1_000, db.autoLimit())
		}
	}
	db.countReplayed(commit)
	if !woken() || !db.autoDue() {
		t.Fatalf("11,000 bytes of commits past a trigger of %d did not wake the loop", db.autoLimit())
	}
	// The ratio: an image of 20,000 bytes sets the trigger at 40,000 bytes
	// of new log, images left out.
	db.ck.lastImage.Store(20_000)
	if db.autoLimit() != 40_000 || db.autoDue() {
		t.Fatalf("trigger %d after an image of 20,000 bytes (ratio %v), due %v", db.autoLimit(), o.CheckpointLogRatio, db.autoDue())
	}
	for range 30 {
		db.countReplayed(commit)
	}
	if !woken() || !db.autoDue() {
		t.Fatalf("41,000 bytes of commits past a trigger of %d did not wake the loop", db.autoLimit())
	}
}

// TestAutoLimitSmallImages: the trigger is CheckpointLogRatio times the
// newest image, but at most smallImageRatio times while that image is
// smaller than CheckpointMinLogBytes, and never below the minimum.
func TestAutoLimitSmallImages(t *testing.T) {
	for _, c := range []struct {
		ratio        float64
		image, limit int64
	}{
		{ratio: 3, image: 10_000, limit: 100_000},  // the minimum
		{ratio: 3, image: 60_000, limit: 120_000},  // small: 2x, not 3x
		{ratio: 3, image: 99_999, limit: 199_998},  // small: 2x
		{ratio: 3, image: 100_000, limit: 300_000}, // not small: 3x
		{ratio: 3, image: 1_000_000, limit: 3_000_000},
		{ratio: 1, image: 60_000, limit: 100_000}, // a lower ratio is kept
		{ratio: 1.5, image: 90_000, limit: 135_000},
		{ratio: 2, image: 1_000_000, limit: 2_000_000},
	} {
		o, err := (&Options{CheckpointMinLogBytes: 100_000, CheckpointLogRatio: c.ratio}).withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		db := &DB{opts: o}
		db.ck.init()
		db.ck.lastImage.Store(c.image)
		if got := db.autoLimit(); got != c.limit {
			t.Errorf("ratio %v, image %d: autoLimit %d, want %d", c.ratio, c.image, got, c.limit)
		}
	}
	if d := DefaultOptions(); d.CheckpointLogRatio != 2 || smallImageRatio != 2 {
		t.Fatalf("default ratio %v, small-image ratio %v: the figures of bench/journal/2026-12-07-session14.md were measured at 2 and 2", d.CheckpointLogRatio, smallImageRatio)
	}
}
