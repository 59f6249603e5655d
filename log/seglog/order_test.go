package seglog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

// orderRecorder records an OrderWatcher's calls, and the fdatasyncs
// between them, as lines.
type orderRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (o *orderRecorder) add(s string) {
	o.mu.Lock()
	o.lines = append(o.lines, s)
	o.mu.Unlock()
}

func (o *orderRecorder) Ordered(first log.Position, data [][]byte) {
	o.add(fmt.Sprintf("ordered %d %q", first, bytes.Join(data, []byte(","))))
}

func (o *orderRecorder) Durable(tail log.Position) { o.add(fmt.Sprintf("durable %d", tail)) }

func (o *orderRecorder) take() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := strings.Join(o.lines, "; ")
	o.lines = nil
	return s
}

// TestNotifyOrder: a group's appends are reported in position order before
// the group's fdatasync, and its tail after it; a group holding junk (an
// append over a position filled ahead of the tail) is reported durable but
// not ordered; after stop nothing is reported.
func TestNotifyOrder(t *testing.T) {
	rec := &orderRecorder{}
	opts := &Options{}
	opts.syncHook = func(f *os.File) error {
		rec.add("sync")
		return f.Sync()
	}
	l := mustOpen(t, t.TempDir(), opts)
	defer l.Close()
	ctx := context.Background()
	stop := l.NotifyOrder(rec)
	if _, err := l.AppendBatch(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")}); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), `ordered 0 "a,b,c"; sync; durable 3`; got != want {
		t.Fatalf("a batch: %s, want %s", got, want)
	}
	if _, err := l.Append(ctx, []byte("d")); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), `ordered 3 "d"; sync; durable 4`; got != want {
		t.Fatalf("an append: %s, want %s", got, want)
	}
	if err := l.Fill(ctx, 4); err != nil { // ahead of the tail: the next append skips it
		t.Fatal(err)
	}
	rec.take()
	p, err := l.Append(ctx, []byte("e"))
	if err != nil || p != 5 {
		t.Fatalf("append after a fill ahead: %d, %v", p, err)
	}
	if got, want := rec.take(), `sync; durable 6`; got != want {
		t.Fatalf("a group with junk: %s, want %s", got, want)
	}
	stop()
	if _, err := l.Append(ctx, []byte("f")); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), `sync`; got != want {
		t.Fatalf("after stop: %s, want %s", got, want)
	}
}
