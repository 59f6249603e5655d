package seglog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
)

// prepOpts: NoSync (fast tests) with the preparer on, as it is without
// NoSync.
func prepOpts(segmentSize int64) *Options {
	return &Options{NoSync: true, forcePrepare: true, SegmentSize: segmentSize}
}

// prepIdle waits until the preparer has nothing asked of it and nothing
// in progress, and returns the active segment's last record end and its
// prepared and zeroed bytes.
func prepIdle(t *testing.T, l *Log) (end, ready, zeroed int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		act := activeSeg(l)
		l.prep.mu.Lock()
		idle := !l.prep.busy && !l.prep.syncing && l.prep.seg == nil
		end, ready, zeroed = int64(act.end), act.ready, act.zeroed
		l.prep.mu.Unlock()
		if idle {
			return end, ready, zeroed
		}
		if time.Now().After(deadline) {
			t.Fatal("the preparer never went idle")
		}
		runtime.Gosched()
	}
}

// TestPrepareAhead: the preparer keeps at least a step of written zeros
// ahead of the last group (so a group of less than a step that arrives
// once it is idle lands in written blocks: Unprepared stays 0), those
// bytes are zeros the file system holds as data (not unwritten extents),
// a group larger than what is prepared is written all the same (counted
// Unprepared) and preparation resumes past it, and everything reads back
// across reopen.
func TestPrepareAhead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := prepOpts(4 << 20)
	l := mustOpen(t, dir, opts)
	var want [][]byte
	app := func(b []byte) {
		t.Helper()
		p, err := l.Append(ctx, b)
		if err != nil || p != log.Position(len(want)) {
			t.Fatalf("Append %d = %d, %v", len(want), p, err)
		}
		want = append(want, b)
	}
	app([]byte("first"))
	end, ready, _ := prepIdle(t, l)
	if ready < end+stepSize/2 {
		t.Fatalf("after one group: prepared up to %d, last record ends at %d: less than half a step ahead", ready, end)
	}
	for i := 0; i < 60; i++ {
		app(bytes.Repeat([]byte{byte(i)}, 10000))
		end, ready, _ = prepIdle(t, l)
		if ready < end+stepSize/2 && ready < opts.SegmentSize {
			t.Fatalf("group %d: prepared up to %d, last record at %d", i, ready, end)
		}
	}
	st := l.Stats()
	if st.Unprepared != 0 || st.PrepareWaits != 0 {
		t.Fatalf("groups of 10 KB with the preparer idle between them: %d unprepared, %d waits; want 0", st.Unprepared, st.PrepareWaits)
	}
	if st.Prepared < uint64(end) {
		t.Fatalf("%d bytes prepared for %d bytes of records", st.Prepared, end)
	}
	act := activeSeg(l)
	fi, err := os.Stat(act.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < ready {
		t.Fatalf("segment file of %d bytes, prepared up to %d", fi.Size(), ready)
	}
	if fi.Size() > end+2*maxPrepAhead {
		t.Fatalf("segment file of %d bytes for records up to %d: more than two steps ahead", fi.Size(), end)
	}
	f, err := os.Open(act.path)
	if err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, fi.Size()-end)
	if _, err := f.ReadAt(rest, end); err != nil {
		t.Fatal(err)
	}
	if lastNonZero(rest) >= 0 {
		t.Fatal("the prepared bytes past the last record are not zeros")
	}
	if canPreallocate(t) {
		// SEEK_DATA counts written blocks as data and unwritten extents
		// as holes: the prepared zeros must be written blocks.
		if de := dataEnd(f, fi.Size()); de < ready {
			t.Fatalf("data extents end at %d, prepared up to %d: the zeros are not written blocks", de, ready)
		}
	}
	f.Close()

	// A group larger than what is prepared.
	_, ready, _ = prepIdle(t, l)
	big := bytes.Repeat([]byte("B"), int(ready-end)+100000)
	app(big)
	if st := l.Stats(); st.Unprepared != 1 {
		t.Fatalf("a group past the prepared bytes: Unprepared = %d, want 1", st.Unprepared)
	}
	// A single large group among small ones asks for zeros as a small one
	// does (a run of large groups: TestLargeGroupZerosAhead).
	end, ready, _ = prepIdle(t, l)
	if ready < end+stepSize/2 {
		t.Fatalf("after a large group: prepared up to %d, last record at %d", ready, end)
	}
	app([]byte("after the large group"))
	if st := l.Stats(); st.Unprepared != 1 {
		t.Fatalf("a small group after preparation resumed: Unprepared = %d, want 1", st.Unprepared)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, opts)
	defer l.Close()
	readsBack(t, l, want)
	if p, err := l.Append(ctx, []byte("after reopen")); err != nil || p != log.Position(len(want)) {
		t.Fatalf("Append after reopen = %d, %v", p, err)
	}
	if st := l.Stats(); st.Unprepared != 0 {
		t.Fatalf("the first group after reopen landed past the prepared bytes (Unprepared %d)", st.Unprepared)
	}
}

// TestHalfPreparedSegmentOpens: the states a crash during preparation can
// leave — zeros written up to any point after the last record (the file
// cut short there, or longer with blocks preallocated and never written
// after it), a new segment whose first step of zeros was cut short, and a
// torn last group followed by prepared zeros — open with every record
// before intact, take appends at the right positions, and keep them across
// another reopen.
func TestHalfPreparedSegmentOpens(t *testing.T) {
	ctx := context.Background()
	opts := prepOpts(1 << 20)
	dir := t.TempDir()
	l := mustOpen(t, dir, opts)
	const n = 40
	for i := range n {
		if _, err := l.Append(ctx, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	end, ready, _ := prepIdle(t, l)
	sp := spanOf(t, l, n-1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segPath := func(d string) string { return filepath.Join(d, sp.path) }
	resize := func(size int64) func(d string) error {
		return func(d string) error { return os.Truncate(segPath(d), size) }
	}
	type crash struct {
		name  string
		apply func(d string) error
		keep  int // entries that survive
	}
	crashes := []crash{
		{"zeros reached the last record's end only", resize(end), n},
		{"zeros reached one byte", resize(end + 1), n},
		{"zeros reached an odd offset", resize(end + 5001), n},
		{"zeros reached halfway", resize((end + ready) / 2), n},
		{"zeros written, unwritten blocks after them", func(d string) error {
			if err := os.Truncate(segPath(d), end+3000); err != nil {
				return err
			}
			f, err := os.OpenFile(segPath(d), os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			return preallocate(f, ready+stepSize)
		}, n},
		{"torn last group, prepared zeros after it", func(d string) error {
			b, err := os.ReadFile(segPath(d))
			if err != nil {
				return err
			}
			clear(b[sp.from+(sp.to-sp.from)/2 : sp.to])
			return os.WriteFile(segPath(d), b, 0o600)
		}, n - 1},
	}
	for _, c := range crashes {
		t.Run(c.name, func(t *testing.T) {
			d := copyDir(t, dir)
			if err := c.apply(d); err != nil {
				t.Fatal(err)
			}
			checkReopen(t, d, opts, c.keep)
		})
	}

	// A new segment whose first step of zeros was cut short: the log
	// rolls at a trim beyond the tail, and the new file is cut inside its
	// zeros (or right after its header).
	l = mustOpen(t, dir, opts)
	if err := l.Trim(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	act := activeSeg(l)
	newEnd, newPath := int64(act.end), filepath.Base(act.path)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{newEnd, newEnd + 1, newEnd + 4095, stepSize / 2} {
		t.Run(fmt.Sprintf("new segment cut at %d", size), func(t *testing.T) {
			d := copyDir(t, dir)
			if err := os.Truncate(filepath.Join(d, newPath), size); err != nil {
				t.Fatal(err)
			}
			l := mustOpen(t, d, opts)
			defer l.Close()
			if _, err := l.Read(ctx, 999); !errors.Is(err, log.ErrTrimmed) {
				t.Fatalf("Read(999) = %v, want ErrTrimmed", err)
			}
			if p, err := l.Append(ctx, []byte("x")); err != nil || p != 1000 {
				t.Fatalf("Append = %d, %v; want 1000", p, err)
			}
		})
	}
}

// checkReopen opens the log in d, checks its first keep entries, appends
// one at keep, and checks it after another reopen.
func checkReopen(t *testing.T, d string, opts *Options, keep int) {
	t.Helper()
	ctx := context.Background()
	l, err := Open(d, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for i := range keep {
		if got, err := l.Read(ctx, log.Position(i)); err != nil || !bytes.Equal(got, payload(i)) {
			t.Fatalf("Read(%d) = %d bytes, %v", i, len(got), err)
		}
	}
	if _, err := l.Read(ctx, log.Position(keep)); !errors.Is(err, log.ErrNotWritten) {
		t.Fatalf("Read(%d) = %v, want ErrNotWritten", keep, err)
	}
	for i := range 5 {
		if p, err := l.Append(ctx, payload(keep+i)); err != nil || p != log.Position(keep+i) {
			t.Fatalf("Append = %d, %v; want %d", p, err, keep+i)
		}
	}
	prepIdle(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, d, opts)
	defer l.Close()
	for i := range keep + 5 {
		if got, err := l.Read(ctx, log.Position(i)); err != nil || !bytes.Equal(got, payload(i)) {
			t.Fatalf("after a second reopen Read(%d) = %d bytes, %v", i, len(got), err)
		}
	}
}

// TestGroupDoesNotWaitForPrepareSync: a group that reaches into zeros the
// preparer has written but not yet synced is written and acknowledged
// while that sync is still under way (it waits only for the zeros to be
// written, never for the preparer's fdatasync).
func TestGroupDoesNotWaitForPrepareSync(t *testing.T) {
	ctx := context.Background()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var hold atomic.Bool
	opts := prepOpts(4 << 20)
	opts.prepSyncHook = func(*os.File) error {
		if hold.Load() {
			entered <- struct{}{}
			<-release
		}
		return nil
	}
	l := mustOpen(t, t.TempDir(), opts)
	defer l.Close()
	defer close(release)
	if _, err := l.Append(ctx, []byte("first")); err != nil {
		t.Fatal(err)
	}
	end, ready, _ := prepIdle(t, l)
	hold.Store(true)
	// A group that leaves less than a step prepared: the preparer is asked
	// for more, writes it and blocks in its sync.
	if _, err := l.Append(ctx, make([]byte, ready-end-recHeaderSize-100)); err != nil {
		t.Fatal(err)
	}
	testutil.Receive(t, "the preparer's sync", entered)
	act := activeSeg(l)
	l.prep.mu.Lock()
	zeroed, ready2 := act.zeroed, act.ready
	l.prep.mu.Unlock()
	if zeroed <= ready2 {
		t.Fatalf("preparer blocked in its sync with zeros written up to %d, prepared %d", zeroed, ready2)
	}
	// This group lands past the synced bytes, inside the written zeros.
	done := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, make([]byte, 1000))
		done <- err
	}()
	if err := testutil.Receive(t, "the append into written zeros", done); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Unprepared != 0 {
		t.Fatalf("Unprepared = %d, want 0 (the zeros were written)", st.Unprepared)
	}
}

// TestNoZeroFill: with NoZeroFill the blocks ahead of the groups stay
// preallocated and unwritten (no preparer, no zeros), and the log works as
// ever across a reopen.
func TestNoZeroFill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := &Options{NoZeroFill: true, SegmentSize: 4 << 20}
	l := mustOpen(t, dir, opts)
	var want [][]byte
	for i := range 40 {
		b := bytes.Repeat([]byte{byte(i)}, 10000)
		if p, err := l.Append(ctx, b); err != nil || p != log.Position(i) {
			t.Fatalf("Append %d = %d, %v", i, p, err)
		}
		want = append(want, b)
	}
	if st := l.Stats(); st.Prepared != 0 {
		t.Fatalf("%d bytes prepared with NoZeroFill", st.Prepared)
	}
	act := activeSeg(l)
	fi, err := os.Stat(act.path)
	if err != nil {
		t.Fatal(err)
	}
	if canPreallocate(t) {
		f, err := os.Open(act.path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		records := int64(40 * 10000)
		if de := dataEnd(f, fi.Size()); de > records+2*stepSize {
			t.Fatalf("data extents end at %d for %d bytes of records in a %d-byte file: blocks ahead were written", de, records, fi.Size())
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, opts)
	defer l.Close()
	readsBack(t, l, want)
}

// readsBack checks that l holds want, from position 0.
func readsBack(t *testing.T, l *Log, want [][]byte) {
	t.Helper()
	for i, w := range want {
		if got, err := l.Read(context.Background(), log.Position(i)); err != nil || !bytes.Equal(got, w) {
			t.Fatalf("after reopen Read(%d) = %d bytes, %v", i, len(got), err)
		}
	}
}
