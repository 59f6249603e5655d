package cruzdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/seglog"
)

// TestCrashAtBoundariesSeglog is TestCrashAtEveryBoundary's commit and flush
// boundaries on seglog (with fdatasync): at each, the log's durable state is
// copied as a crash would leave it, and a database opened on the copy holds
// every commit acknowledged before it and agrees with a model replay of the
// copied log.
func TestCrashAtBoundariesSeglog(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	points := []struct {
		name  string
		opts  Options
		n     int
		match func(op string, typ entry.Type, ph string) bool
	}{
		{"intention-appended-not-acknowledged", Options{}, 3, func(op string, typ entry.Type, ph string) bool {
			return op == "append" && typ == entry.TypeIntention && ph == "after"
		}},
		{"delta-produced-not-serialized", Options{}, 2, func(op string, typ entry.Type, ph string) bool {
			return op == "append" && typ == entry.TypeAfterimage && ph == "before"
		}},
		{"afterimage-appended-not-confirmed", Options{}, 2, func(op string, typ entry.Type, ph string) bool {
			return op == "append" && typ == entry.TypeAfterimage && ph == "after"
		}},
		{"serial-afterimage-appended", Options{FlushSerial: true}, 5, func(op string, typ entry.Type, ph string) bool {
			return op == "append" && typ == entry.TypeAfterimage && ph == "after"
		}},
		{"batch-in-flight", Options{}, 2, func(op string, _ entry.Type, ph string) bool { return op == "batch" && ph == "before" }},
		{"batch-landed-not-acknowledged", Options{}, 2, func(op string, _ entry.Type, ph string) bool { return op == "batch" && ph == "after" }},
		{"during-replay", Options{}, 40, func(op string, _ entry.Type, _ string) bool { return op == "read" }},
	}
	for _, pt := range points {
		t.Run(pt.name, func(t *testing.T) {
			sl, h, db, a, clone := seglogCrashRig(t, pt.opts, seed)
			var count atomic.Int64
			var copyErr error
			cp := newCrashPoint()
			h.setHook(func(op string, typ entry.Type, ph string) {
				if pt.match(op, typ, ph) && count.Add(1) == int64(pt.n) {
					cp.take(a, func() { copyErr = sl.CopyTo(clone) })
				}
			})
			// After each round, let its last afterimages go out: with no
			// commit left to ride with, they are appended alone, which is
			// what the single-append boundaries wait for.
			flush := func() {
				if err := db.flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			reached := crashRounds(db, a, seed, cp, 25, 20, nil, flush)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if !reached {
				t.Fatal("crash point never reached")
			}
			if copyErr != nil {
				t.Fatal(copyErr)
			}
			acked := cp.acked
			verifySeglogRecovery(t, clone, acked)
		})
	}
}

// seglogCrashRig opens a database with opts on a hooked seglog in a
// temporary directory and gives it some history; clone is where a crash
// point copies the log to. Commit and flush boundaries only (checkpoint
// boundaries: TestCheckpointCrashBoundaries): the model replays the copy
// from position 1, which a checkpoint would have trimmed.
func seglogCrashRig(t *testing.T, opts Options, seed uint64) (sl *seglog.Log, h *segHookLog, db *DB, a *acks, clone string) {
	t.Helper()
	sl, err := seglog.Open(filepath.Join(t.TempDir(), SegLogDirName), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sl.Close() })
	h = &segHookLog{Log: sl}
	opts.Log = h
	opts.CheckpointLogRatio = -1
	if db, err = Open("", &opts); err != nil {
		t.Fatal(err)
	}
	a = &acks{m: map[string]string{}}
	crashWarmUp(db, a, seed)
	return sl, h, db, a, filepath.Join(t.TempDir(), SegLogDirName)
}

// verifySeglogRecovery opens a database on the seglog in dir and checks it
// against the acknowledged writes and a model replay of the log.
func verifySeglogRecovery(t *testing.T, dir string, acked map[string]string) {
	t.Helper()
	l, err := seglog.Open(dir, nil)
	if err != nil {
		t.Fatalf("reopen the copied log: %v", err)
	}
	defer l.Close()
	db, err := Open("", &Options{Log: l})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if err := checkAcked(db, acked); err != nil {
		t.Fatal(err)
	}
	want := dumpMap(modelReplay(t, l, log.Position(db.SafePoint().Tail)))
	if got := dump(t, db); got != want {
		t.Fatalf("state differs from the model replay of the copied log\n got %d bytes\nwant %d bytes", len(got), len(want))
	}
}

// TestCorruptSegmentReported: a byte flipped in an acknowledged record of
// the embedded seglog makes Open fail with an error wrapping log.ErrCorrupt;
// the database never starts on a log it cannot read.
func TestCorruptSegmentReported(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	a := &acks{m: map[string]string{}}
	crashWork(db, a, 0, 40, 1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := filepath.Glob(filepath.Join(dir, SegLogDirName, "*.seg"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 200); err != nil { // inside the first records (the header is 32 bytes)
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, 200); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(dir, &Options{NoSync: true}); !errors.Is(err, log.ErrCorrupt) {
		t.Fatalf("Open on a corrupt segment = %v, want an error wrapping log.ErrCorrupt", err)
	}
}
