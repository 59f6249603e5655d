package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// liveBytes sums the sizes of the entries a log still holds.
func liveBytes(t testing.TB, l log.Log) int64 {
	t.Helper()
	ctx := context.Background()
	tail, err := l.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for p := tail; p > 0; {
		p--
		data, err := l.Read(ctx, p)
		if errors.Is(err, log.ErrTrimmed) {
			break
		}
		if err == nil {
			n += int64(len(data))
		}
	}
	return n
}

func noAuto(l log.Log) *Options { return &Options{Log: l, CheckpointLogRatio: -1} }

func TestCheckpointTrimsAndReopens(t *testing.T) {
	l := memlog.New(nil)
	db, err := Open("", noAuto(l))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 300 {
		put(t, db, fmt.Sprintf("k%03d", i%100), fmt.Sprintf("v%d", i))
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := liveBytes(t, l)
	info, err := db.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Position == 0 || info.TrimmedBelow != info.Position || info.Nodes != 100 || info.Bytes == 0 {
		t.Fatalf("info %+v", info)
	}
	if _, err := l.Read(ctx, info.Position-1); !errors.Is(err, log.ErrTrimmed) {
		t.Fatalf("below the cut: %v", err)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	after := liveBytes(t, l)
	if after >= before {
		t.Fatalf("live log %d bytes after the checkpoint, %d before (%+v)", after, before, info)
	}
	for i := 300; i < 350; i++ {
		put(t, db, fmt.Sprintf("k%03d", i%100), fmt.Sprintf("v%d", i))
	}
	for i := range 100 {
		want := fmt.Sprintf("v%d", i+200)
		if i < 50 {
			want = fmt.Sprintf("v%d", i+300)
		}
		if v, ok := get(t, db, fmt.Sprintf("k%03d", i)); !ok || v != want {
			t.Fatalf("k%03d = %q, want %q", i, v, want)
		}
	}
	st := db.Stats()
	if st.Checkpoints != 1 || st.TrimmedBelow != info.Position || st.LastCheckpoint != info.Position {
		t.Fatalf("stats %+v", st)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, clone := range []*memlog.Log{l.CrashClone(), l} {
		db2, err := Open("", noAuto(clone))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			want := fmt.Sprintf("v%d", i+200)
			if i < 50 {
				want = fmt.Sprintf("v%d", i+300)
			}
			if v, ok := get(t, db2, fmt.Sprintf("k%03d", i)); !ok || v != want {
				t.Fatalf("reopened: k%03d = %q, want %q", i, v, want)
			}
		}
		db2.Close()
	}
}
