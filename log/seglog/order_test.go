package seglog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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

// TestStatsGaps: a group the committer takes as soon as the one before is
// durable counts in Stats.Gaps (with the time between); the first group,
// begun by a request the committer waited for, does not.
func TestStatsGaps(t *testing.T) {
	hold := make(chan struct{})
	var held atomic.Bool
	opts := &Options{}
	opts.syncHook = func(f *os.File) error {
		if held.CompareAndSwap(false, true) {
			<-hold
		}
		return f.Sync()
	}
	l := mustOpen(t, t.TempDir(), opts)
	defer l.Close()
	ctx := context.Background()
	errs := make(chan error, 2)
	go func() { _, err := l.Append(ctx, []byte("a")); errs <- err }()
	for !held.Load() { // a's group is in its fdatasync
		runtime.Gosched()
	}
	go func() { _, err := l.Append(ctx, []byte("b")); errs <- err }()
	for l.q.Len() == 0 { // b waits for the next group
		runtime.Gosched()
	}
	close(hold)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := l.Stats()
	if st.Groups != 2 || st.Gaps != 1 || st.GapTime <= 0 {
		t.Fatalf("after a group taken right after another: groups %d, gaps %d, gap time %v; want 2, 1, > 0", st.Groups, st.Gaps, st.GapTime)
	}
}

// fileWatcher records, in Ordered, which entries reported are already in
// one of dir's segment files and which are not.
type fileWatcher struct {
	dir              string
	mu               sync.Mutex
	written, missing int
}

func (w *fileWatcher) Ordered(first log.Position, data [][]byte) {
	ents, _ := os.ReadDir(w.dir)
	var all []byte
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), segSuffix) {
			b, _ := os.ReadFile(filepath.Join(w.dir, e.Name()))
			all = append(all, b...)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range data {
		if bytes.Contains(all, d) {
			w.written++
		} else {
			w.missing++
		}
	}
}

func (w *fileWatcher) Durable(log.Position) {}

func (w *fileWatcher) take() (written, missing int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	written, missing = w.written, w.missing
	w.written, w.missing = 0, 0
	return written, missing
}

// TestOrderedAfterSmallWrite: a group of small entries is reported ordered
// once its bytes are written (before its fdatasync), so its write starts
// without waiting for the report; a group of at least 64 KiB is reported
// before its write, so the early applier starts on it at once.
func TestOrderedAfterSmallWrite(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, &Options{})
	defer l.Close()
	w := &fileWatcher{dir: dir}
	defer l.NotifyOrder(w)()
	ctx := context.Background()
	for i := range 5 {
		batch := [][]byte{[]byte(fmt.Sprintf("entry-%d-a", i)), []byte(fmt.Sprintf("entry-%d-b", i))}
		if _, err := l.AppendBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if written, missing := w.take(); written != 10 || missing != 0 {
		t.Fatalf("small groups: %d entries written when reported, %d not; want 10, 0", written, missing)
	}
	large := bytes.Repeat([]byte("L"), largeGroup)
	if _, err := l.Append(ctx, large); err != nil {
		t.Fatal(err)
	}
	if written, missing := w.take(); written != 0 || missing != 1 {
		t.Fatalf("a large group: %d entries written when reported, %d not; want 0, 1", written, missing)
	}
}
