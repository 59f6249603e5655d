package cruzdb

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// stuckTrimLog is a log whose Trim blocks until its context ends.
type stuckTrimLog struct {
	log.Log
	once    sync.Once
	entered chan struct{} // closed when a Trim first blocks
}

func (l *stuckTrimLog) Trim(ctx context.Context, pos log.Position) error {
	l.once.Do(func() { close(l.entered) })
	<-ctx.Done()
	return ctx.Err()
}

// TestCloseWhileTrimBlocked: Close returns while a Checkpoint called with
// no deadline is inside the log's Trim (it waited for the trim loop, which
// waited for that trim), and the Checkpoint call ends too, with an error.
func TestCloseWhileTrimBlocked(t *testing.T) {
	ctx := context.Background()
	l := &stuckTrimLog{Log: memlog.New(nil), entered: make(chan struct{})}
	db, err := Open("", &Options{Log: l, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := db.Update(ctx, func(tx *Txn) error { return tx.Put([]byte{'k', byte(i)}, []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	}
	ckErr := make(chan error, 1)
	go func() {
		_, err := db.Checkpoint(context.Background())
		ckErr <- err
	}()
	select {
	case <-l.entered:
	case err := <-ckErr:
		t.Fatalf("Checkpoint returned before trimming: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no trim within 60 s")
	}
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	// Generous: Close has nothing left to wait for but the blocked trim.
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Close hangs while a Checkpoint is inside the log's Trim")
	}
	select {
	case err := <-ckErr:
		if err == nil || !errors.Is(err, ErrClosed) {
			t.Fatalf("Checkpoint cut off by Close: %v, want an error wrapping ErrClosed", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Checkpoint hangs in the log's Trim after Close")
	}
}
