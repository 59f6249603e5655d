package seglog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// syncGate is a syncHook that stops every fdatasync until the test lets it
// return, with the error it is given.
type syncGate struct {
	entered chan int   // the number of each fdatasync, as it starts
	release chan error // what the fdatasync waiting returns
	n       atomic.Int32
}

func newSyncGate() *syncGate {
	return &syncGate{entered: make(chan int, 16), release: make(chan error)}
}

func (g *syncGate) hook(*os.File) error {
	g.entered <- int(g.n.Add(1))
	return <-g.release
}

// next waits for the next fdatasync to start and returns its number.
func (g *syncGate) next(t *testing.T) int {
	t.Helper()
	select {
	case n := <-g.entered:
		return n
	case <-time.After(20 * time.Second):
		t.Fatal("no fdatasync started")
		return 0
	}
}

type appended struct {
	pos log.Position
	err error
}

func appendAsync(l *Log, data string) chan appended {
	c := make(chan appended, 1)
	go func() {
		p, err := l.Append(context.Background(), []byte(data))
		c <- appended{p, err}
	}()
	return c
}

// notDone fails the test if c already has an outcome.
func notDone(t *testing.T, c chan appended, what string) {
	t.Helper()
	select {
	case a := <-c:
		t.Fatalf("%s returned (%d, %v) before its fdatasync did", what, a.pos, a.err)
	default:
	}
}

func wait(t *testing.T, c chan appended) appended {
	t.Helper()
	select {
	case a := <-c:
		return a
	case <-time.After(20 * time.Second):
		t.Fatal("append never returned")
		return appended{}
	}
}

// TestPipelineWritesWhileSyncing: a group written while the fdatasync of
// the one before it is blocked is not durable with it: it completes only
// after a later fdatasync returns; until then it reads as not written, the
// tail does not pass it and no tail notice fires for it.
func TestPipelineWritesWhileSyncing(t *testing.T) {
	ctx := context.Background()
	g := newSyncGate()
	l := mustOpen(t, t.TempDir(), &Options{NoSync: true, syncHook: g.hook})
	defer l.Close()
	var notified atomic.Int64
	notified.Store(-1)
	stop := l.NotifyTail(0, func(p log.Position, err error) { notified.Store(int64(p)) })
	defer stop()

	a := appendAsync(l, "a")
	if n := g.next(t); n != 1 {
		t.Fatalf("fdatasync %d, want 1", n)
	}
	b := appendAsync(l, "b")
	waitWritten(t, l, 1) // b's group is written behind a's, a's fdatasync blocked
	notDone(t, a, "the first append")
	notDone(t, b, "the second append")
	for p := range 2 {
		if _, err := l.Read(ctx, log.Position(p)); !errors.Is(err, log.ErrNotWritten) {
			t.Fatalf("Read(%d) before any fdatasync returned = %v, want ErrNotWritten", p, err)
		}
	}
	if tail, _ := l.Tail(ctx); tail != 0 || notified.Load() != -1 {
		t.Fatalf("tail %d, notice %d before any fdatasync returned", tail, notified.Load())
	}

	g.release <- nil // a's fdatasync returns
	if r := wait(t, a); r.err != nil || r.pos != 0 {
		t.Fatalf("first append = %d, %v", r.pos, r.err)
	}
	if n := g.next(t); n != 2 { // b's, started after b was written
		t.Fatalf("fdatasync %d, want 2", n)
	}
	notDone(t, b, "the second append")
	if got, err := l.Read(ctx, 0); err != nil || string(got) != "a" {
		t.Fatalf("Read(0) = %q, %v", got, err)
	}
	if _, err := l.Read(ctx, 1); !errors.Is(err, log.ErrNotWritten) {
		t.Fatalf("Read(1) while its fdatasync runs = %v, want ErrNotWritten", err)
	}
	if tail, _ := l.Tail(ctx); tail != 1 || notified.Load() != 1 {
		t.Fatalf("tail %d, notice %d after the first fdatasync; want 1, 1", tail, notified.Load())
	}

	g.release <- nil
	if r := wait(t, b); r.err != nil || r.pos != 1 {
		t.Fatalf("second append = %d, %v", r.pos, r.err)
	}
	if got, err := l.Read(ctx, 1); err != nil || string(got) != "b" {
		t.Fatalf("Read(1) = %q, %v", got, err)
	}
	if st := l.Stats(); st.Groups != 2 || st.Syncs != 2 {
		t.Fatalf("%d groups, %d fdatasyncs; want 2, 2", st.Groups, st.Syncs)
	}
}

// TestPipelineSyncFailureFailsWrittenBehind: a failed fdatasync fails its
// group and the group written behind it while it ran (which no fdatasync
// then covers), neither is readable, later writes get the sticky failure,
// and what was durable before stays readable.
func TestPipelineSyncFailureFailsWrittenBehind(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	g := newSyncGate()
	l := mustOpen(t, dir, &Options{NoSync: true, syncHook: g.hook})
	first := appendAsync(l, "durable")
	g.next(t)
	g.release <- nil
	if r := wait(t, first); r.err != nil {
		t.Fatal(r.err)
	}

	a := appendAsync(l, "a")
	g.next(t)
	b := appendAsync(l, "b")
	waitWritten(t, l, 1)
	boom := errors.New("injected fdatasync failure")
	g.release <- boom
	for i, c := range []chan appended{a, b} {
		if r := wait(t, c); !errors.Is(r.err, boom) {
			t.Fatalf("append %d = %d, %v; want the fdatasync failure", i, r.pos, r.err)
		}
	}
	if n := g.n.Load(); n != 2 {
		t.Fatalf("%d fdatasyncs; want 2 (none after the failure)", n)
	}
	for p := 1; p < 3; p++ {
		if _, err := l.Read(ctx, log.Position(p)); !errors.Is(err, log.ErrNotWritten) {
			t.Fatalf("Read(%d) of a failed group = %v, want ErrNotWritten", p, err)
		}
	}
	if tail, _ := l.Tail(ctx); tail != 1 {
		t.Fatalf("tail %d after the failure, want 1", tail)
	}
	if _, err := l.Append(ctx, []byte("later")); !errors.Is(err, boom) {
		t.Fatalf("Append after the failure = %v, want the sticky failure", err)
	}
	if err := l.Fill(ctx, 9); !errors.Is(err, boom) {
		t.Fatalf("Fill after the failure = %v, want the sticky failure", err)
	}
	if got, err := l.Read(ctx, 0); err != nil || string(got) != "durable" {
		t.Fatalf("Read(0) after the failure = %q, %v", got, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, &Options{NoSync: true})
	defer l.Close()
	if got, err := l.Read(ctx, 0); err != nil || string(got) != "durable" {
		t.Fatalf("Read(0) after reopen = %q, %v", got, err)
	}
	if p, err := l.Append(ctx, []byte("after reopen")); err != nil || p < 1 {
		t.Fatalf("Append after reopen = %d, %v", p, err)
	}
}

// TestPipelineStress: appenders (single and batched, small and large),
// fills ahead, trims and readers run together on small segments with a
// slow fdatasync, so that groups are written while others sync, across
// segment rolls and trims. Every acknowledged entry reads back as written
// (while running and after reopen), positions are never given twice, and
// filled positions read as filled.
func TestPipelineStress(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var syncs atomic.Int64
	opts := &Options{NoSync: true, SegmentSize: minSegmentSize, syncHook: func(*os.File) error {
		syncs.Add(1)
		time.Sleep(100 * time.Microsecond) // a slow disk, so that groups queue behind syncs
		return nil
	}}
	l := mustOpen(t, dir, opts)
	entry := func(w, i int) []byte {
		n := 10 + (w*131+i*17)%900
		if i%25 == 7 {
			n = smallEntry + 1000 // a large one now and then
		}
		return bytes.Repeat(fmt.Appendf(nil, "w%d.%d;", w, i), n/8+1)
	}
	var mu sync.Mutex
	acked := map[log.Position][]byte{}
	filled := map[log.Position]bool{}
	add := func(p log.Position, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := acked[p]; dup || filled[p] {
			t.Errorf("position %d given twice", p)
		}
		acked[p] = b
	}
	var wg sync.WaitGroup
	const writers, each = 6, 60
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i%9 == 4 {
					bs := [][]byte{entry(w, i), entry(w, i+1000)}
					ps, err := l.AppendBatch(ctx, bs)
					if err != nil {
						t.Error(err)
						return
					}
					if ps[1] <= ps[0] {
						t.Errorf("batch positions %v not ascending", ps)
					}
					add(ps[0], bs[0])
					add(ps[1], bs[1])
					continue
				}
				b := entry(w, i)
				p, err := l.Append(ctx, b)
				if err != nil {
					t.Error(err)
					return
				}
				add(p, b)
				// Read it back at once (from the ring) and an older one.
				if got, err := l.Read(ctx, p); !errors.Is(err, log.ErrTrimmed) && (err != nil || !bytes.Equal(got, b)) {
					t.Errorf("Read(%d) just appended: %v", p, err)
				}
			}
		}()
	}
	var trimmed atomic.Uint64
	done := make(chan struct{})
	var side sync.WaitGroup
	side.Add(2)
	sideCtx, cancelSide := context.WithCancel(ctx)
	defer cancelSide()
	go func() { // fills ahead, and trims behind the tail, every 8 positions
		defer side.Done()
		rng := rand.New(rand.NewPCG(3, 4))
		for k := 0; ; k++ {
			tail, err := l.Tail(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := l.WaitTail(sideCtx, tail+8); err != nil {
				return // done
			}
			if k%4 == 3 && tail > 150 {
				to := uint64(tail) - 150
				if err := l.Trim(ctx, log.Position(to)); err != nil {
					t.Error(err)
					return
				}
				trimmed.Store(max(trimmed.Load(), to))
				continue
			}
			p := tail + log.Position(8+rng.IntN(20))
			if err := l.Fill(ctx, p); errors.Is(err, log.ErrWritten) {
				continue // appended since
			} else if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if _, ok := acked[p]; ok {
				t.Errorf("position %d both filled and appended", p)
			}
			filled[p] = true
			mu.Unlock()
		}
	}()
	go func() { // reads of everything acknowledged
		defer side.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			mu.Lock()
			var ps []log.Position
			for p := range acked {
				ps = append(ps, p)
				if len(ps) == 20 {
					break
				}
			}
			mu.Unlock()
			for _, p := range ps {
				got, err := l.Read(ctx, p)
				if errors.Is(err, log.ErrTrimmed) {
					continue
				}
				mu.Lock()
				want := acked[p]
				mu.Unlock()
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("Read(%d) of an acknowledged entry: %v", p, err)
				}
			}
		}
	}()
	wg.Wait()
	close(done)
	cancelSide()
	side.Wait()
	if t.Failed() {
		l.Close()
		return
	}
	st := l.Stats()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, &Options{NoSync: true, SegmentSize: minSegmentSize})
	defer l.Close()
	trim := log.Position(trimmed.Load())
	for p, want := range acked {
		got, err := l.Read(ctx, p)
		if p < trim {
			if !errors.Is(err, log.ErrTrimmed) {
				t.Fatalf("Read(%d) below the trim point %d after reopen = %v", p, trim, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Read(%d) after reopen: %v", p, err)
		}
	}
	for p := range filled {
		if _, err := l.Read(ctx, p); p >= trim && !errors.Is(err, log.ErrFilled) {
			t.Fatalf("Read(%d) of a filled position after reopen = %v", p, err)
		}
	}
	t.Logf("%d entries, %d groups, %d fdatasyncs, trimmed to %d", len(acked), st.Groups, st.Syncs, trim)
}

// TestPipelineTornBehind: a crash while a group's fdatasync runs and
// another group is written behind it can leave the second group on disk
// and the first torn. Neither was acknowledged: Open cuts both (the second
// names the offset durable before the first, so it does not prove the
// first durable) instead of reporting corruption, and neither comes back
// after later appends and a reopen.
func TestPipelineTornBehind(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	g := newSyncGate()
	l := mustOpen(t, dir, &Options{NoSync: true, syncHook: g.hook})
	first := appendAsync(l, "durable")
	g.next(t)
	g.release <- nil
	if r := wait(t, first); r.err != nil || r.pos != 0 {
		t.Fatalf("first append = %d, %v", r.pos, r.err)
	}
	l.segMu.RLock()
	act := l.segs[len(l.segs)-1]
	tornAt, segPath := int(act.end), act.path
	l.segMu.RUnlock()

	a := appendAsync(l, string(bytes.Repeat([]byte("a"), 3000)))
	g.next(t) // a's fdatasync
	b := appendAsync(l, "written behind")
	waitWritten(t, l, 1)
	crashed := copyDir(t, dir) // the page cache at a crash: a and b written, neither synced
	// The crash tore a: a page of it never reached the disk.
	patchFile(t, filepath.Join(crashed, filepath.Base(segPath)), func(buf []byte) {
		clear(buf[tornAt+100 : tornAt+1100])
	})
	g.release <- nil
	wait(t, a)
	g.next(t)
	g.release <- nil
	wait(t, b)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	opts := &Options{NoSync: true}
	l = mustOpen(t, crashed, opts)
	if tail, err := l.Tail(ctx); err != nil || tail != 1 {
		t.Fatalf("tail after the crash = %d, %v; want 1 (both unacknowledged groups cut)", tail, err)
	}
	if got, err := l.Read(ctx, 0); err != nil || string(got) != "durable" {
		t.Fatalf("Read(0) = %q, %v", got, err)
	}
	if p, err := l.Append(ctx, []byte("after the crash")); err != nil || p != 1 {
		t.Fatalf("Append after the crash = %d, %v", p, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, crashed, opts)
	defer l.Close()
	if tail, err := l.Tail(ctx); err != nil || tail != 2 {
		t.Fatalf("tail after reopen = %d, %v; want 2", tail, err)
	}
	if got, err := l.Read(ctx, 1); err != nil || string(got) != "after the crash" {
		t.Fatalf("Read(1) after reopen = %q, %v", got, err)
	}
}
