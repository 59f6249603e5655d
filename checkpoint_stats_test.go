package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// liveLogBytes is the size of the entries of l from its trim point to its
// tail: what Stats.LogLiveBytes estimates.
func liveLogBytes(t *testing.T, l log.Log) int64 {
	t.Helper()
	ctx := context.Background()
	tail, err := l.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for p := logTrimPoint(t, l); p < uint64(tail); p++ {
		data, err := l.Read(ctx, log.Position(p))
		if err != nil && !errors.Is(err, log.ErrFilled) {
			t.Fatalf("read %d: %v", p, err)
		}
		n += int64(len(data))
	}
	return n
}

// waitLiveBytes waits until db's Stats.LogLiveBytes is the log's live size.
func waitLiveBytes(t *testing.T, db *DB, l log.Log, when string) {
	t.Helper()
	want := liveLogBytes(t, l)
	if !testutil.Poll(testutil.WaitLong, func() bool { return db.Stats().LogLiveBytes == want }) {
		t.Fatalf("%s: Stats.LogLiveBytes %d, the log holds %d bytes from its trim point %d on", when, db.Stats().LogLiveBytes, want, logTrimPoint(t, l))
	}
}

// plainLog hides the optional interfaces of the log it wraps.
type plainLog struct{ log.Log }

// TestLogLiveBytesAfterRestart: Stats.LogLiveBytes is the size of the log
// from its trim point to the tail, also after a restart whose safe point
// lies above the trim point (it counted only what replay read), on a log
// with ReadRange and on one without.
func TestLogLiveBytesAfterRestart(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			l := memlog.New(nil)
			opts := &Options{Log: l, CheckpointLogRatio: -1}
			if plain {
				opts.Log = plainLog{l}
			}
			testLogLiveBytesAfterRestart(t, l, opts)
		})
	}
}

func testLogLiveBytesAfterRestart(t *testing.T, l log.Log, opts *Options) {
	ctx := context.Background()
	put := func(db *DB, from, n int) {
		for i := from; i < from+n; i++ {
			if err := db.Update(ctx, func(tx *Txn) error {
				return tx.Put(fmt.Appendf(nil, "k%03d", i%50), fmt.Appendf(nil, "v%d", i))
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	db, err := Open("", opts)
	if err != nil {
		t.Fatal(err)
	}
	put(db, 0, 100)
	if _, err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	put(db, 100, 100)
	waitLiveBytes(t, db, l, "before the restart")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 2 {
		db, err = Open("", opts)
		if err != nil {
			t.Fatal(err)
		}
		if sp, tp := db.SafePoint().Intention, logTrimPoint(t, l); sp <= tp {
			t.Fatalf("the test needs a safe point above the trim point: %d, trim point %d", sp, tp)
		}
		waitLiveBytes(t, db, l, fmt.Sprintf("restart %d", round))
		put(db, 200, 20)
		waitLiveBytes(t, db, l, fmt.Sprintf("restart %d, then commits", round))
		if round == 1 {
			if _, err := db.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			put(db, 300, 20)
			waitLiveBytes(t, db, l, "restart 1, then a checkpoint")
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
