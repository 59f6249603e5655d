package seglog

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

func TestOptions(t *testing.T) {
	in := &Options{NoSync: true}
	c, err := in.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if !in.NoSync || in.SegmentSize != 0 || in.MaxGroupBytes != 0 || in.FileMode != 0 {
		t.Fatalf("withDefaults modified its receiver: %+v", *in)
	}
	if c.SegmentSize != defaultSegmentSize || c.MaxGroupBytes != defaultMaxGroupBytes || c.FileMode != defaultFileMode || !c.NoSync || c.Spares != defaultSpares {
		t.Fatalf("defaults: %+v", c)
	}
	if in.Spares != 0 {
		t.Fatalf("withDefaults modified its receiver: %+v", *in)
	}
	if c, err := (&Options{Spares: -1}).withDefaults(); err != nil || c.Spares != 0 {
		t.Fatalf("Spares -1: %+v, %v; want none kept", c, err)
	}
	if c, err := (*Options)(nil).withDefaults(); err != nil || c.SegmentSize != defaultSegmentSize {
		t.Fatalf("nil options: %+v, %v", c, err)
	}
	for _, bad := range []Options{
		{SegmentSize: 1000},
		{SegmentSize: maxSegmentSize + 1},
		{MaxGroupBytes: -1},
		{MaxGroupBytes: maxSegmentSize + 1},
		{Spares: maxSpares + 1},
	} {
		if _, err := Open(t.TempDir(), &bad); err == nil || !strings.Contains(err.Error(), "invalid options") {
			t.Errorf("Open with %+v = %v, want an invalid options error", bad, err)
		}
	}
}

func TestSecondOpenerRefused(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, &Options{NoSync: true})
	if _, err := Open(dir, nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want an error saying the directory is in use", err)
	}
	l.Close()
	l = mustOpen(t, dir, &Options{NoSync: true})
	l.Close()
}

// segFiles returns the segment files in dir and their total size on disk.
func segFiles(t *testing.T, dir string) (int, int64) {
	t.Helper()
	seqs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, s := range seqs {
		fi, err := os.Stat(filepath.Join(dir, segName(s)))
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	return len(seqs), size
}

// TestTrimDeletesSegments: Trim deletes every whole segment below its
// point before it returns, and the trim point survives reopen.
func TestTrimDeletesSegments(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := &Options{NoSync: true, SegmentSize: minSegmentSize}
	l := mustOpen(t, dir, opts)
	data := bytes.Repeat([]byte("x"), 4000)
	for range 200 {
		if _, err := l.Append(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	before, sizeBefore := segFiles(t, dir)
	if before < 10 {
		t.Fatalf("%d segments for 800 KB, want 10 or more", before)
	}
	if err := l.Trim(ctx, 190); err != nil {
		t.Fatal(err)
	}
	after, sizeAfter := segFiles(t, dir)
	if after > 2 || sizeAfter > sizeBefore/5 {
		t.Fatalf("after Trim(190): %d segments of %d bytes, before %d of %d", after, sizeAfter, before, sizeBefore)
	}
	for _, p := range []log.Position{0, 100, 189} {
		if _, err := l.Read(ctx, p); !errors.Is(err, log.ErrTrimmed) {
			t.Fatalf("Read(%d) = %v, want ErrTrimmed", p, err)
		}
	}
	l.Close()
	l = mustOpen(t, dir, opts)
	defer l.Close()
	for _, p := range []log.Position{0, 189} {
		if _, err := l.Read(ctx, p); !errors.Is(err, log.ErrTrimmed) {
			t.Fatalf("after reopen Read(%d) = %v, want ErrTrimmed", p, err)
		}
	}
	if got, err := l.Read(ctx, 190); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Read(190) = %d bytes, %v", len(got), err)
	}
	// A trim of everything, beyond the tail.
	if err := l.Trim(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	if n, _ := segFiles(t, dir); n != 1 {
		t.Fatalf("after Trim beyond the tail: %d segments, want 1", n)
	}
	if p, err := l.Append(ctx, data); err != nil || p != 1000 {
		t.Fatalf("Append after Trim(1000) = %d, %v", p, err)
	}
}

// TestOneSyncPerGroup: many concurrent appenders share fdatasyncs: never
// more than one per group, and far fewer than one per append.
func TestOneSyncPerGroup(t *testing.T) {
	ctx := context.Background()
	var syncs atomic.Int64
	opts := &Options{syncHook: func(f *os.File) error { syncs.Add(1); return fdatasync(f) }}
	l := mustOpen(t, t.TempDir(), opts)
	defer l.Close()
	const writers, each = 32, 20
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := l.Append(ctx, []byte("entry")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n := syncs.Load()
	if n >= writers*each/2 {
		t.Fatalf("%d fdatasyncs for %d appends by %d writers: groups are not shared", n, writers*each, writers)
	}
	t.Logf("%d appends, %d fdatasyncs", writers*each, n)
}

// TestSmallAppendNotBehindLarge: while a large group is being written, a
// large append, a small one and another large one queue; the small one
// commits in the next group, alone, and the large ones after it.
func TestSmallAppendNotBehindLarge(t *testing.T) {
	ctx := context.Background()
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	var gate atomic.Bool
	opts := &Options{NoSync: true, MaxGroupBytes: 1 << 20, syncHook: func(*os.File) error {
		if gate.Load() {
			entered <- struct{}{}
			<-release
		}
		return nil
	}}
	l := mustOpen(t, t.TempDir(), opts)
	defer l.Close()
	big := bytes.Repeat([]byte("b"), 1<<20)
	gate.Store(true)
	res := make(chan log.Position, 3)
	go func() { p, _ := l.Append(ctx, big); res <- p }()
	<-entered // the first large group is being written
	gate.Store(false)
	var wg sync.WaitGroup
	var big2, small log.Position
	wg.Add(2)
	go func() { defer wg.Done(); big2, _ = l.Append(ctx, big) }()
	waitQueued(t, l, 1)
	go func() { defer wg.Done(); small, _ = l.Append(ctx, []byte("intention")) }()
	waitQueued(t, l, 2)
	big3 := make(chan log.Position)
	go func() { p, _ := l.Append(ctx, big); big3 <- p }()
	waitQueued(t, l, 3)
	close(release)
	wg.Wait()
	first, third := <-res, <-big3
	// Group 2 holds the small append alone (the large ones that waited
	// with it are left for later, once); group 3 holds big2, and big3,
	// which does not fit with it, waits for group 4.
	if first != 0 || small != 1 || big2 != 2 || third != 3 {
		t.Fatalf("positions: first large %d, small %d, second large %d, third large %d; want 0, 1, 2, 3", first, small, big2, third)
	}
}

func waitQueued(t *testing.T, l *Log, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if l.q.Len() >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue never reached %d requests", n)
		}
		runtime.Gosched()
	}
}

// TestSyncFailureIsSticky: a failed fdatasync fails its whole group, nothing
// of it is readable, and every later write is refused until reopen; what
// was durable before stays readable.
func TestSyncFailureIsSticky(t *testing.T) {
	ctx := context.Background()
	var fail atomic.Bool
	boom := errors.New("injected fdatasync failure")
	dir := t.TempDir()
	opts := &Options{NoSync: true, syncHook: func(*os.File) error {
		if fail.Load() {
			return boom
		}
		return nil
	}}
	l := mustOpen(t, dir, opts)
	if _, err := l.Append(ctx, []byte("durable")); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	if _, err := l.Append(ctx, []byte("lost")); !errors.Is(err, boom) {
		t.Fatalf("Append with a failing fdatasync = %v, want the failure", err)
	}
	fail.Store(false)
	if _, err := l.Read(ctx, 1); !errors.Is(err, log.ErrNotWritten) {
		t.Fatalf("Read of the failed append = %v, want ErrNotWritten", err)
	}
	if _, err := l.Append(ctx, []byte("later")); !errors.Is(err, boom) {
		t.Fatalf("Append after the failure = %v, want the sticky failure", err)
	}
	if err := l.Fill(ctx, 5); !errors.Is(err, boom) {
		t.Fatalf("Fill after the failure = %v, want the sticky failure", err)
	}
	if got, err := l.Read(ctx, 0); err != nil || string(got) != "durable" {
		t.Fatalf("Read(0) after the failure = %q, %v", got, err)
	}
	l.Close()
	l = mustOpen(t, dir, &Options{NoSync: true})
	defer l.Close()
	if p, err := l.Append(ctx, []byte("after reopen")); err != nil || p < 1 {
		t.Fatalf("Append after reopen = %d, %v", p, err)
	}
}

// TestFillAheadSurvivesTrimAndRoll: a fill far beyond the tail stays junk
// after the segment that recorded it is trimmed away and the log reopened.
func TestFillAheadSurvivesTrimAndRoll(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := &Options{NoSync: true, SegmentSize: minSegmentSize}
	l := mustOpen(t, dir, opts)
	if err := l.Fill(ctx, 5000); err != nil {
		t.Fatal(err)
	}
	if err := l.Fill(ctx, 40); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("y"), 3000)
	for range 100 {
		if _, err := l.Append(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Trim(ctx, 95); err != nil {
		t.Fatal(err)
	}
	seqs, _ := listSegments(dir)
	if seqs[0] == 1 {
		t.Fatalf("the first segment (which recorded the fills) was not trimmed: %v", seqs)
	}
	l.Close()
	l = mustOpen(t, dir, opts)
	defer l.Close()
	if _, err := l.Read(ctx, 5000); !errors.Is(err, log.ErrFilled) {
		t.Fatalf("Read(5000) = %v, want ErrFilled", err)
	}
	if _, err := l.Read(ctx, 40); !errors.Is(err, log.ErrTrimmed) {
		t.Fatalf("Read(40) = %v, want ErrTrimmed", err)
	}
	if tail, _ := l.Tail(ctx); tail != 101 {
		t.Fatalf("tail %d, want 101 (100 appends and the junk at 40)", tail)
	}
}

// TestCopyTo copies a log while appenders run: every entry acknowledged
// before the copy began is in the copy, which opens and takes appends.
func TestCopyTo(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, t.TempDir(), &Options{NoSync: true, SegmentSize: minSegmentSize})
	defer l.Close()
	var mu sync.Mutex
	acked := map[log.Position][]byte{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				data := payload(w*100000 + i)
				p, err := l.Append(ctx, data)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[p] = data
				mu.Unlock()
			}
		}()
	}
	for round := range 3 {
		for {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n > 300*(round+1) {
				break
			}
			runtime.Gosched()
		}
		mu.Lock()
		before := maps.Clone(acked)
		mu.Unlock()
		dst := filepath.Join(t.TempDir(), "copy")
		if err := l.CopyTo(dst); err != nil {
			t.Fatal(err)
		}
		c := mustOpen(t, dst, nil)
		for p, data := range before {
			if got, err := c.Read(ctx, p); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("round %d: copy Read(%d) = %d bytes, %v", round, p, len(got), err)
			}
		}
		if _, err := c.Append(ctx, []byte("in the copy")); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	close(stop)
	wg.Wait()
	if err := l.CopyTo(t.TempDir()); err != nil {
		t.Fatalf("CopyTo an empty existing directory: %v", err)
	}
	if err := l.CopyTo(l.dir); err == nil {
		t.Fatal("CopyTo a non-empty directory succeeded")
	}
}

// TestWaitTail: WaitTail returns at once when the tail is already beyond,
// wakes when an append or a trim moves it, and ends with the context or
// Close.
func TestWaitTail(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, t.TempDir(), &Options{NoSync: true})
	if _, err := l.Append(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if tail, err := l.WaitTail(ctx, 0); err != nil || tail != 1 {
		t.Fatalf("WaitTail(0) = %d, %v; want 1 at once", tail, err)
	}
	got := make(chan log.Position, 1)
	go func() { tail, _ := l.WaitTail(ctx, 1); got <- tail }()
	if _, err := l.Append(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if tail := <-got; tail != 2 {
		t.Fatalf("WaitTail(1) after an append = %d, want 2", tail)
	}
	go func() { tail, _ := l.WaitTail(ctx, 5); got <- tail }()
	if err := l.Trim(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if tail := <-got; tail != 10 {
		t.Fatalf("WaitTail(5) after Trim(10) = %d, want 10", tail)
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := l.WaitTail(short, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitTail with an expiring context = %v", err)
	}
	errc := make(chan error, 1)
	go func() { _, err := l.WaitTail(ctx, 100); errc <- err }()
	l.Close()
	if err := <-errc; !errors.Is(err, log.ErrClosed) {
		t.Fatalf("WaitTail across Close = %v, want ErrClosed", err)
	}
}
