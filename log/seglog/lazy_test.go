package seglog

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/groupcommit"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
)

type lazyResult struct {
	pos    log.Position
	shared bool
	err    error
}

// appendLazy starts a lazy append and returns once it is queued (or, if
// it is due at once, done).
func appendLazy(t *testing.T, l *Log, data []byte, within time.Duration) <-chan lazyResult {
	t.Helper()
	queued := l.q.Len()
	ch := make(chan lazyResult, 1)
	go func() {
		pos, shared, err := l.AppendLazy(context.Background(), data, within)
		ch <- lazyResult{pos, shared, err}
	}()
	testutil.Eventually(t, 10*time.Second, func() bool { return l.q.Len() > queued || len(ch) > 0 })
	return ch
}

// TestAppendLazyJoinsNextGroup: a lazy append starts no group; the next
// append of another writer commits it in its own group (one write, one
// fdatasync), and a lazy append whose wait ends commits alone.
func TestAppendLazyJoinsNextGroup(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, t.TempDir(), nil)
	defer l.Close()
	ch := appendLazy(t, l, []byte("afterimage"), time.Hour)
	ch2 := appendLazy(t, l, []byte("afterimage 2"), time.Hour)
	groups := l.Stats().Groups
	p, err := l.Append(ctx, []byte("intention"))
	if err != nil {
		t.Fatal(err)
	}
	r, r2 := <-ch, <-ch2
	if r.err != nil || r2.err != nil || !r.shared || !r2.shared {
		t.Fatalf("lazy appends: %+v, %+v; want shared, no error", r, r2)
	}
	if st := l.Stats(); st.Groups != groups+1 || st.Lazy != 2 || st.LazyAlone != 0 {
		t.Fatalf("stats %+v (groups before %d): want the three entries in one group", st, groups)
	}
	for pos, want := range map[log.Position]string{r.pos: "afterimage", r2.pos: "afterimage 2", p: "intention"} {
		if got, err := l.Read(ctx, pos); err != nil || string(got) != want {
			t.Fatalf("read %d = %q, %v; want %q", pos, got, err, want)
		}
	}

	// Nothing else comes: the lazy append commits alone once due.
	r = <-appendLazy(t, l, []byte("alone"), time.Millisecond)
	if r.err != nil || r.shared {
		t.Fatalf("lazy append alone: %+v", r)
	}
	if st := l.Stats(); st.Groups != groups+2 || st.LazyAlone != 1 {
		t.Fatalf("stats %+v: want a second group, of the lazy append alone", st)
	}
	if got, err := l.Read(ctx, r.pos); err != nil || string(got) != "alone" {
		t.Fatalf("read %d = %q, %v", r.pos, got, err)
	}
}

// TestAppendLazyTrimStartsGroup: a trim (or fill) starts a group too, which
// takes the lazy appends waiting along.
func TestAppendLazyTrimStartsGroup(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, t.TempDir(), nil)
	defer l.Close()
	for range 3 {
		if _, err := l.Append(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	ch := appendLazy(t, l, []byte("afterimage"), time.Hour)
	if err := l.Trim(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if r := <-ch; r.err != nil || !r.shared || r.pos != 3 {
		t.Fatalf("lazy append %+v; want position 3, shared with the trim", r)
	}
}

// TestAppendLazyClose: Close fails a lazy append still waiting with
// log.ErrClosed (nothing was written for it), and the log reopens without
// it.
func TestAppendLazyClose(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, nil)
	ch := appendLazy(t, l, []byte("afterimage"), time.Hour)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-ch; !errors.Is(r.err, log.ErrClosed) {
		t.Fatalf("lazy append at Close: %+v; want log.ErrClosed", r)
	}
	l = mustOpen(t, dir, nil)
	defer l.Close()
	if tail, err := l.Tail(context.Background()); err != nil || tail != 0 {
		t.Fatalf("tail after reopen %d, %v; want 0", tail, err)
	}
}

// TestAppendLazyNotCountedSmall: a lazy append of a small entry does not
// hold back a large append waiting with it (only appends that are not lazy
// do): both go in the next group.
func TestAppendLazyNotCountedSmall(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, t.TempDir(), nil)
	defer l.Close()
	ch := appendLazy(t, l, []byte("afterimage"), time.Hour)
	groups := l.Stats().Groups
	if _, err := l.Append(ctx, make([]byte, smallEntry+1)); err != nil {
		t.Fatal(err)
	}
	if r := <-ch; r.err != nil || !r.shared {
		t.Fatalf("lazy append %+v", r)
	}
	if st := l.Stats(); st.Groups != groups+1 {
		t.Fatalf("%d groups for a large append and a lazy one, want 1", st.Groups-groups)
	}
}

// TestAppendLazyBatch: a lazy batch waits as one lazy append does; the next
// append commits it with its own entry in one group, at consecutive
// positions in order; a lazy batch alone commits once due; one waiting at
// Close fails with log.ErrClosed.
func TestAppendLazyBatch(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, t.TempDir(), nil)
	type res struct {
		pos    []log.Position
		shared bool
		err    error
	}
	start := func(data [][]byte, within time.Duration) <-chan res {
		queued := l.q.Len()
		ch := make(chan res, 1)
		go func() {
			pos, shared, err := l.AppendLazyBatch(ctx, data, within)
			ch <- res{pos, shared, err}
		}()
		testutil.Eventually(t, 10*time.Second, func() bool { return l.q.Len() >= queued+len(data) || len(ch) > 0 })
		return ch
	}
	batch := [][]byte{[]byte("a1"), []byte("a2"), []byte("a3")}
	ch := start(batch, time.Hour)
	groups := l.Stats().Groups
	p, err := l.Append(ctx, []byte("intention"))
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil || !r.shared || len(r.pos) != 3 || r.pos[1] != r.pos[0]+1 || r.pos[2] != r.pos[1]+1 {
		t.Fatalf("lazy batch: %+v; want three consecutive positions, shared", r)
	}
	if st := l.Stats(); st.Groups != groups+1 || st.Lazy != 3 || st.LazyAlone != 0 {
		t.Fatalf("stats %+v (groups before %d): want the four entries in one group", st, groups)
	}
	want := map[log.Position]string{p: "intention"}
	for i, q := range r.pos {
		want[q] = string(batch[i])
	}
	for pos, w := range want {
		if got, err := l.Read(ctx, pos); err != nil || string(got) != w {
			t.Fatalf("read %d = %q, %v; want %q", pos, got, err, w)
		}
	}
	r = <-start(batch[:2], time.Millisecond)
	if r.err != nil || r.shared || len(r.pos) != 2 {
		t.Fatalf("lazy batch alone: %+v", r)
	}
	if st := l.Stats(); st.LazyAlone != 2 {
		t.Fatalf("stats %+v: want the two entries committed alone", st)
	}
	ch = start(batch, time.Hour)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-ch; !errors.Is(r.err, log.ErrClosed) {
		t.Fatalf("lazy batch at Close: %+v; want log.ErrClosed", r)
	}
}

// TestAppendLazyCompletedLast: the committer tells a group's lazy appends
// (the flusher's afterimages) their outcome after its other requests (the
// committers of intentions), once those have had the processor: the
// writers of afterimages do not run ahead of the committers woken with
// them, who append again for the next group.
func TestAppendLazyCompletedLast(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var order []string
	opts := &Options{}
	opts.completeHook = func(r *groupcommit.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Lazy {
			order = append(order, "lazy")
		} else {
			order = append(order, "append")
		}
	}
	l := mustOpen(t, t.TempDir(), opts)
	defer l.Close()
	ch := appendLazy(t, l, []byte("afterimage"), time.Hour)
	ch2 := appendLazy(t, l, []byte("afterimage 2"), time.Hour)
	if _, err := l.Append(ctx, []byte("intention")); err != nil {
		t.Fatal(err)
	}
	if r, r2 := <-ch, <-ch2; r.err != nil || r2.err != nil {
		t.Fatalf("lazy appends: %+v, %+v", r, r2)
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := strings.Join(order, ","), "append,lazy,lazy"; got != want {
		t.Fatalf("outcomes told in the order %s, want %s", got, want)
	}
}
