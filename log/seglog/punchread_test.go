package seglog

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// TestReadInProgressAcrossPunch holds a read of an old position between
// locating it and reading the file while a trim passes it and retires the
// active segment, which punches the dead blocks of the retired file at
// once. The read must return the record it located (or log.ErrTrimmed),
// never the punched zeros as corruption: the punch waits for reads in
// progress. (A cruzdb reader on a snapshot taken before a checkpoint's
// trim is such a read; on ErrTrimmed it retries on a newer snapshot.)
func TestReadInProgressAcrossPunch(t *testing.T) {
	ctx := context.Background()
	var held atomic.Uint64 // the position whose read is held; 0: none
	inside, release := make(chan struct{}), make(chan struct{})
	l := mustOpen(t, t.TempDir(), &Options{readHook: func(p uint64) {
		if p != 0 && held.CompareAndSwap(p, 0) {
			close(inside)
			<-release
		}
	}})
	defer l.Close()
	l.noRecent = true // every read is a pread of the file
	data := bytes.Repeat([]byte("s"), 1000)
	batch := make([][]byte, 20)
	for i := range batch {
		batch[i] = data
	}
	var first, last log.Position
	for i := range 20 { // 400 KB in one segment, below the size kept as a spare
		ps, err := l.AppendBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = ps[0]
		}
		last = ps[len(ps)-1]
	}
	l.segMu.RLock()
	seg := l.segs[0]
	l.segMu.RUnlock()

	old := first + 5
	held.Store(uint64(old))
	type result struct {
		data []byte
		err  error
	}
	read := make(chan result, 1)
	go func() {
		d, err := l.Read(ctx, old)
		read <- result{d, err}
	}()
	<-inside
	trimmed := make(chan error, 1)
	go func() { trimmed <- l.Trim(ctx, last-20) }()
	// Let the trim go as far as it can: done (it punched under the read)
	// or waiting for the read to end (a writer pending on the file's lock).
	var trimErr error
	trimDone := false
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case trimErr = <-trimmed:
			trimDone = true
		default:
		}
		if trimDone {
			break
		}
		if !seg.fileMu.TryRLock() {
			break // the punch waits for the held read
		}
		seg.fileMu.RUnlock()
		if time.Now().After(deadline) {
			t.Fatal("the trim neither finished nor waited for the read in progress")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	r := <-read
	if !trimDone {
		trimErr = <-trimmed
	}
	if trimErr != nil {
		t.Fatal(trimErr)
	}
	switch {
	case r.err == nil && !bytes.Equal(r.data, data):
		t.Fatalf("read of %d in progress across the punch returned %d other bytes", old, len(r.data))
	case r.err != nil && !errors.Is(r.err, log.ErrTrimmed):
		t.Fatalf("read of %d in progress across the punch: %v (want the record or ErrTrimmed)", old, r.err)
	}
	if _, err := l.Read(ctx, old); !errors.Is(err, log.ErrTrimmed) {
		t.Fatalf("Read(%d) after the trim: %v, want ErrTrimmed", old, err)
	}
	for q := last - 20; q <= last; q++ {
		if got, err := l.Read(ctx, q); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Read(%d) = %d bytes, %v", q, len(got), err)
		}
	}
	l.segMu.RLock()
	n := len(l.segs)
	l.segMu.RUnlock()
	if n < 2 {
		t.Fatalf("%d segments after the trim: the active one was not retired, so nothing was punched", n)
	}
}
