package cruzdb

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestImageWriterHurriesForHeldCommits: with CheckpointDuty at 1e-4 an
// image's writer rests ten thousand times its work after every chunk, so
// one automatic checkpoint would take minutes. Commits outgrow it and are
// held back (Stats.CheckpointWaits); the writer must then stop resting, so
// every commit ends and the checkpoints complete. Without the hurry, the
// first held commit waits out the rest and the deadline fails the test.
// Close, which flushes, must not wait out a rest either.
func TestImageWriterHurriesForHeldCommits(t *testing.T) {
	db, err := Open("", &Options{Log: memlog.New(nil), CheckpointDuty: 1e-4,
		CheckpointLogRatio: 0.5, CheckpointMinLogBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	val := make([]byte, 1000)
	done := make(chan error, 1)
	go func() {
		// 1,500 keys of 1 KB: images of one or two chunks, dozens of
		// automatic checkpoints.
		for i := range 300 {
			err := db.Update(ctx, func(tx *Txn) error {
				for j := range 10 {
					if err := tx.Put(fmt.Appendf(nil, "k%04d", (i*10+j)%1500), val); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	awaitCommits(t, done, 2*time.Minute, db, "commits held behind a resting image writer")
	st := db.Stats()
	t.Logf("%s; waits %d", summary(st), st.CheckpointWaits)
	if st.CheckpointWaits == 0 || st.CheckpointsWritten == 0 {
		t.Fatalf("no commit was held back by a checkpoint (waits %d, written %d): the test did not exercise the hurry", st.CheckpointWaits, st.CheckpointsWritten)
	}
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	if err := testutil.Receive(t, "Close behind a resting image writer", closed); err != nil {
		t.Fatal(err)
	}
}

// TestLastChunkIsNotRestedOn: the image writer rests before a chunk, in
// proportion to the work on the one before, never between its last chunk
// and the marker. With CheckpointDuty at 1e-6 a rest lasts a million times
// the work, so a one-chunk image (the whole checkpoint of a small tree)
// that rested after its chunk would not complete within the deadline;
// nothing waits on the image here, so nothing hurries the writer.
func TestLastChunkIsNotRestedOn(t *testing.T) {
	db, err := Open("", &Options{Log: memlog.New(nil), CheckpointDuty: 1e-6, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	err = db.Update(ctx, func(tx *Txn) error {
		for i := range 100 {
			if err := tx.Put(fmt.Appendf(nil, "k%03d", i), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, testutil.WaitLong)
	defer cancel()
	info, err := db.Checkpoint(cctx)
	if err != nil {
		t.Fatalf("checkpoint of a one-chunk image: %v (%s)", err, summary(db.Stats()))
	}
	if info.Nodes != 100 {
		t.Fatalf("image of %d nodes, want 100", info.Nodes)
	}
}

// awaitCommits fails the test with err when done delivers one, and with
// db's state when done delivers nothing within d: a hang bound for writers
// that a bug would wedge, not a timing.
func awaitCommits(t *testing.T, done <-chan error, d time.Duration, db *DB, wedged string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(d):
		st := db.Stats()
		t.Fatalf("%s: %s, waits %d, written %d", wedged, summary(st), st.CheckpointWaits, st.CheckpointsWritten)
	}
}
