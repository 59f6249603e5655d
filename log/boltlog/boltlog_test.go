package boltlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	bolt "go.etcd.io/bbolt"
)

var bg = context.Background()

func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "log.bolt")
}

func mustOpen(t testing.TB, path string, opts *Options) *Log {
	t.Helper()
	l, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, data []byte) log.Position {
	t.Helper()
	p, err := l.Append(bg, data)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return p
}

func mustTail(t testing.TB, l *Log) log.Position {
	t.Helper()
	p, err := l.Tail(bg)
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	return p
}

func wantRead(t testing.TB, l *Log, p log.Position, want []byte, wantErr error) {
	t.Helper()
	got, err := l.Read(bg, p)
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("Read(%d) = %q, %v; want error %v", p, got, err, wantErr)
		}
		if !strings.Contains(err.Error(), fmt.Sprint(p)) {
			t.Fatalf("Read(%d) error %q does not name the position", p, err)
		}
		return
	}
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Read(%d) = %q, %v; want %q", p, got, err, want)
	}
}

// waitQueued polls until n requests wait in l's queue (the committer is held).
func waitQueued(t testing.TB, l *Log, n int) {
	t.Helper()
	testutil.Eventually(t, testutil.WaitLong, func() bool {
		return l.q.Len() >= n
	})
}

// gate is a commit hook that can hold the committer inside a transaction and
// fail commits.
type gate struct {
	mu      sync.Mutex
	hold    chan struct{} // non-nil: the next commit blocks until it is closed
	held    chan struct{} // closed when that commit has started waiting
	fail    error         // non-nil: commits roll back and return it
	commits atomic.Int64
}

func (g *gate) commit(tx *bolt.Tx) error {
	g.mu.Lock()
	hold, held := g.hold, g.held
	g.hold, g.held = nil, nil
	g.mu.Unlock()
	if hold != nil {
		close(held)
		<-hold
	}
	g.commits.Add(1)
	g.mu.Lock()
	fail := g.fail
	g.mu.Unlock()
	if fail != nil {
		_ = tx.Rollback()
		return fail
	}
	return tx.Commit()
}

// arm makes the next commit wait, once it has started, until release is
// closed; held is closed when it waits.
func (g *gate) arm() (held, release chan struct{}) {
	held, release = make(chan struct{}), make(chan struct{})
	g.mu.Lock()
	g.hold, g.held = release, held
	g.mu.Unlock()
	return held, release
}

func (g *gate) setFail(err error) {
	g.mu.Lock()
	g.fail = err
	g.mu.Unlock()
}

// holdNext appends a "blocker" entry whose commit waits until the returned
// release is called; it returns once that commit is waiting.
func (g *gate) holdNext(t testing.TB, l *Log) (release func()) {
	t.Helper()
	held, hold := g.arm()
	done := make(chan error, 1)
	go func() { _, err := l.Append(bg, []byte("blocker")); done <- err }()
	<-held
	return func() {
		close(hold)
		if err := <-done; err != nil {
			t.Errorf("blocker append: %v", err)
		}
	}
}

func TestAppendReadTail(t *testing.T) {
	path := tempPath(t)
	l := mustOpen(t, path, nil)
	if p := mustTail(t, l); p != 0 {
		t.Fatalf("tail of new log = %d", p)
	}
	wantRead(t, l, 0, nil, log.ErrNotWritten)
	for i := range 10 {
		if p := mustAppend(t, l, fmt.Appendf(nil, "entry %d", i)); p != log.Position(i) {
			t.Fatalf("append %d got position %d", i, p)
		}
	}
	// Zero-length entries are data, distinct from junk and holes.
	if p := mustAppend(t, l, nil); p != 10 {
		t.Fatalf("empty append at %d", p)
	}
	if p := mustAppend(t, l, []byte{}); p != 11 {
		t.Fatalf("empty append at %d", p)
	}
	if got, err := l.Read(bg, 10); err != nil || len(got) != 0 {
		t.Fatalf("Read(empty) = %q, %v", got, err)
	}
	// Read returns a copy; Append does not retain its argument.
	buf := []byte("mutable")
	p := mustAppend(t, l, buf)
	copy(buf, "XXXXXXX")
	got, _ := l.Read(bg, p)
	copy(got, "YYYYYYY")
	wantRead(t, l, p, []byte("mutable"), nil)
	wantRead(t, l, 3, []byte("entry 3"), nil)
	if tail := mustTail(t, l); tail != 13 {
		t.Fatalf("tail = %d, want 13", tail)
	}
	wantRead(t, l, 13, nil, log.ErrNotWritten)
	wantRead(t, l, 1<<62, nil, log.ErrNotWritten)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Everything survives a reopen, and the tail is recovered.
	l = mustOpen(t, path, nil)
	defer l.Close()
	if tail := mustTail(t, l); tail != 13 {
		t.Fatalf("tail after reopen = %d, want 13", tail)
	}
	wantRead(t, l, 3, []byte("entry 3"), nil)
	wantRead(t, l, 11, []byte{}, nil)
	if p := mustAppend(t, l, []byte("after")); p != 13 {
		t.Fatalf("append after reopen at %d", p)
	}
}

func TestFill(t *testing.T) {
	path := tempPath(t)
	l := mustOpen(t, path, nil)
	mustAppend(t, l, []byte("a")) // 0
	if err := l.Fill(bg, 0); !errors.Is(err, log.ErrWritten) || !strings.Contains(err.Error(), "position 0") {
		t.Fatalf("Fill over data = %v", err)
	}
	wantRead(t, l, 0, []byte("a"), nil)
	// Fill at the tail and beyond: Append skips those positions.
	for _, p := range []log.Position{1, 2, 4, 1 << 40} {
		if err := l.Fill(bg, p); err != nil {
			t.Fatalf("Fill(%d): %v", p, err)
		}
		if err := l.Fill(bg, p); err != nil {
			t.Fatalf("Fill(%d) again (idempotent): %v", p, err)
		}
	}
	if tail := mustTail(t, l); tail != 1 {
		t.Fatalf("tail after fills ahead = %d, want 1 (fills do not move it)", tail)
	}
	wantRead(t, l, 2, nil, log.ErrFilled)
	wantRead(t, l, 1<<40, nil, log.ErrFilled)
	wantRead(t, l, 1<<40+1, nil, log.ErrNotWritten)
	if p := mustAppend(t, l, []byte("b")); p != 3 {
		t.Fatalf("append after fills at %d, want 3", p)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The tail is recovered past the skipped fills, and fills ahead of it
	// are still respected.
	l = mustOpen(t, path, nil)
	defer l.Close()
	if tail := mustTail(t, l); tail != 4 {
		t.Fatalf("tail after reopen = %d, want 4", tail)
	}
	if p := mustAppend(t, l, []byte("c")); p != 5 {
		t.Fatalf("append after reopen at %d, want 5 (4 is junk)", p)
	}
	wantRead(t, l, 4, nil, log.ErrFilled)
	wantRead(t, l, 1<<40, nil, log.ErrFilled)
	wantRead(t, l, 3, []byte("b"), nil)
}

// Fills queued in the same group as appends take their positions first.
func TestFillAndAppendInOneGroup(t *testing.T) {
	g := &gate{}
	l := mustOpen(t, tempPath(t), &Options{commitTx: g.commit})
	defer l.Close()
	release := g.holdNext(t, l) // the blocker takes position 0
	var wg sync.WaitGroup
	pos := make([]log.Position, 4)
	for i := range pos {
		wg.Go(func() { pos[i] = mustAppend(t, l, []byte{byte(i)}) })
	}
	wg.Go(func() {
		if err := l.Fill(bg, 2); err != nil {
			t.Errorf("Fill: %v", err)
		}
	})
	waitQueued(t, l, 5)
	before := g.commits.Load()
	release()
	wg.Wait()
	if n := g.commits.Load() - before; n != 2 {
		t.Fatalf("%d commits, want 2 (blocker, then one group)", n)
	}
	seen := map[log.Position]bool{}
	for _, p := range pos {
		if p == 2 || p == 0 || p > 5 || seen[p] {
			t.Fatalf("append positions %v: want {1,3,4,5}", pos)
		}
		seen[p] = true
	}
	wantRead(t, l, 2, nil, log.ErrFilled)
}

func TestGroupCommit(t *testing.T) {
	g := &gate{}
	l := mustOpen(t, tempPath(t), &Options{commitTx: g.commit})
	defer l.Close()
	release := g.holdNext(t, l)
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { mustAppend(t, l, []byte{byte(i)}) })
	}
	waitQueued(t, l, n)
	before := g.commits.Load()
	release()
	wg.Wait()
	// Everything waiting while the blocker committed goes into one group.
	if got := g.commits.Load() - before; got != 2 {
		t.Fatalf("%d commits for %d queued appends, want 2", got, n)
	}
	if tail := mustTail(t, l); tail != n+1 {
		t.Fatalf("tail = %d", tail)
	}
}

func TestMaxGroupBytes(t *testing.T) {
	g := &gate{}
	l := mustOpen(t, tempPath(t), &Options{commitTx: g.commit, MaxGroupBytes: 1000})
	defer l.Close()
	release := g.holdNext(t, l)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { mustAppend(t, l, make([]byte, 400)) })
	}
	waitQueued(t, l, 10)
	before := g.commits.Load()
	release()
	wg.Wait()
	// 2 entries of 400 bytes fit in 1000: 5 groups, plus the blocker.
	if got := g.commits.Load() - before; got != 6 {
		t.Fatalf("%d commits, want 6", got)
	}
}

func TestTrim(t *testing.T) {
	path := tempPath(t)
	l := mustOpen(t, path, &Options{ReclaimBatch: 7})
	for i := range 100 {
		mustAppend(t, l, []byte{byte(i)})
	}
	if err := l.Trim(bg, 60); err != nil {
		t.Fatal(err)
	}
	wantRead(t, l, 0, nil, log.ErrTrimmed)
	wantRead(t, l, 59, nil, log.ErrTrimmed)
	wantRead(t, l, 60, []byte{60}, nil)
	if err := l.Trim(bg, 10); err != nil { // lower: no-op
		t.Fatal(err)
	}
	wantRead(t, l, 30, nil, log.ErrTrimmed)
	if err := l.Fill(bg, 5); err != nil { // idempotent on trimmed
		t.Fatalf("Fill(trimmed) = %v", err)
	}
	waitReclaimed(t, l, 60)
	// Trim beyond the tail moves the tail.
	if err := l.Trim(bg, 1000); err != nil {
		t.Fatal(err)
	}
	if tail := mustTail(t, l); tail != 1000 {
		t.Fatalf("tail after trim beyond = %d, want 1000", tail)
	}
	wantRead(t, l, 999, nil, log.ErrTrimmed)
	if p := mustAppend(t, l, []byte("x")); p != 1000 {
		t.Fatalf("append after trim beyond at %d", p)
	}
	waitReclaimed(t, l, 1000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, path, nil)
	defer l.Close()
	if tail := mustTail(t, l); tail != 1001 {
		t.Fatalf("tail after reopen = %d", tail)
	}
	wantRead(t, l, 999, nil, log.ErrTrimmed)
	wantRead(t, l, 1000, []byte("x"), nil)
}

// A trim that was durable but not yet reclaimed is reclaimed after reopen.
func TestTrimReclaimAfterReopen(t *testing.T) {
	path := tempPath(t)
	l := mustOpen(t, path, nil)
	for range 50 {
		mustAppend(t, l, []byte("e"))
	}
	// Persist a trim point without deleting, as a crash before the reclaimer
	// ran leaves it.
	if err := l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyTrim, binary.BigEndian.AppendUint64(nil, 40))
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, path, nil)
	defer l.Close()
	wantRead(t, l, 39, nil, log.ErrTrimmed)
	waitReclaimed(t, l, 40)
}

// waitReclaimed polls until no entry below trim is left in the file.
func waitReclaimed(t testing.TB, l *Log, trim uint64) {
	t.Helper()
	testutil.Eventually(t, testutil.WaitLong, func() bool {
		var first []byte
		if err := l.db.View(func(tx *bolt.Tx) error {
			k, _ := tx.Bucket(bucketEntries).Cursor().First()
			first = bytes.Clone(k)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return first == nil || binary.BigEndian.Uint64(first) >= trim
	})
}

func TestTooLarge(t *testing.T) {
	l := mustOpen(t, tempPath(t), &Options{NoSync: true})
	defer l.Close()
	mustAppend(t, l, []byte("x"))
	_, err := l.Append(bg, make([]byte, log.MaxEntrySize+1))
	if !errors.Is(err, log.ErrTooLarge) {
		t.Fatalf("oversized append: %v", err)
	}
	if tail := mustTail(t, l); tail != 1 {
		t.Fatalf("tail after refused append = %d", tail)
	}
	wantRead(t, l, 1, nil, log.ErrNotWritten)
	big := make([]byte, log.MaxEntrySize)
	big[len(big)-1] = 7
	if p := mustAppend(t, l, big); p != 1 {
		t.Fatalf("max-size append at %d", p)
	}
	wantRead(t, l, 1, big, nil)
}

func TestClosed(t *testing.T) {
	l := mustOpen(t, tempPath(t), nil)
	mustAppend(t, l, []byte("x"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(bg, []byte("y")); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := l.Read(bg, 0); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := l.Fill(bg, 5); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("Fill after Close: %v", err)
	}
	if err := l.Trim(bg, 1); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("Trim after Close: %v", err)
	}
	if _, err := l.Tail(bg); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("Tail after Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestContext(t *testing.T) {
	g := &gate{}
	l := mustOpen(t, tempPath(t), &Options{commitTx: g.commit})
	defer l.Close()
	done, cancel := context.WithCancel(bg)
	cancel()
	if _, err := l.Append(done, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(cancelled) = %v", err)
	}
	if _, err := l.Read(done, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read(cancelled) = %v", err)
	}
	if err := l.Fill(done, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Fill(cancelled) = %v", err)
	}
	if err := l.Trim(done, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Trim(cancelled) = %v", err)
	}
	if _, err := l.Tail(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Tail(cancelled) = %v", err)
	}

	// An append cancelled while queued is withdrawn: never written.
	release := g.holdNext(t, l) // position 0
	ctx, cancel := context.WithCancel(bg)
	errc := make(chan error, 1)
	go func() { _, err := l.Append(ctx, []byte("withdrawn")); errc <- err }()
	waitQueued(t, l, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append cancelled while queued = %v", err)
	}
	release()
	if p := mustAppend(t, l, []byte("next")); p != 1 {
		t.Fatalf("append after withdrawn one at %d, want 1", p)
	}
	if tail := mustTail(t, l); tail != 2 {
		t.Fatalf("tail = %d", tail)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{LockTimeout: -1}, {MaxGroupBytes: -1}, {ReclaimBatch: -1}, {InitialMmapSize: -1},
		{PageSize: -1}, {PageSize: 512}, {PageSize: 3000}, {PageSize: 128 << 10},
	} {
		if _, err := Open(tempPath(t), &o); err == nil || !strings.Contains(err.Error(), "boltlog: invalid options") {
			t.Errorf("Open(%+v) = %v, want invalid options", o, err)
		}
	}
	o := &Options{NoSync: true}
	l := mustOpen(t, tempPath(t), o)
	defer l.Close()
	if !o.NoSync || o.LockTimeout != 0 || o.MaxGroupBytes != 0 || o.ReclaimBatch != 0 || o.InitialMmapSize != 0 || o.PageSize != 0 || o.FileMode != 0 || o.commitTx != nil {
		t.Fatalf("Open modified the caller's options: %+v", *o)
	}
	if l.opts.LockTimeout != defaultLockTimeout || l.opts.MaxGroupBytes != defaultMaxGroupBytes {
		t.Fatalf("defaults not applied: %+v", l.opts)
	}
}

func TestSecondOpener(t *testing.T) {
	path := tempPath(t)
	l := mustOpen(t, path, nil)
	mustAppend(t, l, []byte("x"))
	_, err := Open(path, &Options{LockTimeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "in use by another opener") {
		t.Fatalf("second Open = %v, want in-use error", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, path, nil)
	defer l.Close()
	wantRead(t, l, 0, []byte("x"), nil)
}

func TestForeignFile(t *testing.T) {
	dir := t.TempDir()
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rand.Uint32())
	}
	cases := []struct {
		name  string
		make  func(path string)
		wants string
	}{
		{"garbage", func(p string) { writeFile(t, p, random) }, "not a cruzdb log"},
		{"short garbage", func(p string) { writeFile(t, p, random[:100]) }, "not a cruzdb log"},
		{"zeros", func(p string) { writeFile(t, p, make([]byte, 16<<10)) }, "not a cruzdb log"},
		{"one byte", func(p string) { writeFile(t, p, []byte{0}) }, "not a cruzdb log"},
		{"text", func(p string) { writeFile(t, p, []byte("hello, world\n")) }, "not a cruzdb log"},
		{"other bbolt", func(p string) {
			boltFile(t, p, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("users"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			})
		}, "without a \"meta\" bucket"},
		{"empty bbolt", func(p string) { boltFile(t, p, func(*bolt.Tx) error { return nil }) }, "without a \"meta\" bucket"},
		{"wrong magic", func(p string) {
			boltFile(t, p, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(keyMagic, []byte("something-else"))
			})
		}, "magic"},
		{"newer version", func(p string) {
			l := mustOpen(t, p, nil)
			mustAppend(t, l, []byte("x"))
			if err := l.db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyVersion, []byte{0, 0, 0, 99})
			}); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}, "unsupported cruzdb log format version 99"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			c.make(path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fiBefore, _ := os.Stat(path)
			l, err := Open(path, nil)
			if err == nil {
				l.Close()
				t.Fatal("Open accepted a foreign file")
			}
			if !strings.HasPrefix(err.Error(), "boltlog: ") || !strings.Contains(err.Error(), c.wants) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open error %q: want boltlog prefix, %q and the path", err, c.wants)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fiAfter, _ := os.Stat(path)
			if !bytes.Equal(before, after) || fiBefore.Mode() != fiAfter.Mode() {
				t.Fatal("Open changed a foreign file")
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		if _, err := Open(dir, nil); err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Fatalf("Open(dir) = %v", err)
		}
	})
	t.Run("empty file is a new log", func(t *testing.T) {
		path := filepath.Join(dir, "empty")
		writeFile(t, path, nil)
		l := mustOpen(t, path, nil)
		defer l.Close()
		if p := mustAppend(t, l, []byte("x")); p != 0 {
			t.Fatalf("first append at %d", p)
		}
	})
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func boltFile(t testing.TB, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// failureCheck runs the checks that follow a failed group: every appender of
// the group got the error, writes are refused afterwards, reads still work,
// and after reopen the earlier data is intact and none of the group's is.
func failureCheck(t *testing.T, path string, l *Log, errs []error, cause error, before log.Position) {
	t.Helper()
	for i, err := range errs {
		if err == nil || !errors.Is(err, cause) || !strings.Contains(err.Error(), "boltlog: ") {
			t.Fatalf("appender %d of the failing group: err %v, want one wrapping %v", i, err, cause)
		}
	}
	t.Logf("group's error: %v", errs[0])
	if _, err := l.Append(bg, []byte("later")); !errors.Is(err, cause) || !strings.Contains(err.Error(), "refuses writes until reopened") {
		t.Fatalf("Append after failure = %v, want sticky error", err)
	} else {
		t.Logf("later append: %v", err)
	}
	if err := l.Fill(bg, 100); !errors.Is(err, cause) {
		t.Fatalf("Fill after failure = %v", err)
	}
	if err := l.Trim(bg, 1); !errors.Is(err, cause) {
		t.Fatalf("Trim after failure = %v", err)
	}
	wantRead(t, l, 0, []byte("entry 0"), nil)
	if tail := mustTail(t, l); tail != before {
		t.Fatalf("tail after failed group = %d, want %d", tail, before)
	}
	_ = l.Close() // may report the broken file

	l = mustOpen(t, path, nil)
	defer l.Close()
	if tail := mustTail(t, l); tail != before {
		t.Fatalf("tail after reopen = %d, want %d", tail, before)
	}
	for p := range before - 1 {
		wantRead(t, l, p, fmt.Appendf(nil, "entry %d", p), nil)
	}
	wantRead(t, l, before-1, []byte("blocker"), nil)
	wantRead(t, l, before, nil, log.ErrNotWritten)
	if n := entryKeys(t, l); n != int(before) {
		t.Fatalf("%d keys in the entries bucket after reopen, want the %d entries before the group: parts of the failed group survived", n, before)
	}
	if p := mustAppend(t, l, []byte("reopened")); p != before {
		t.Fatalf("append after reopen at %d, want %d", p, before)
	}
}

// failGroup appends entry 0..4, then queues n appenders behind a held
// blocker commit (position 5), lets the blocker commit, holds the group's
// commit, calls breakIt, and lets the group commit. Every second appender's
// entry is large enough to be stored in parts. It returns the group's
// errors.
func failGroup(t *testing.T, l *Log, g *gate, n int, breakIt func()) []error {
	t.Helper()
	for i := range 5 {
		mustAppend(t, l, fmt.Appendf(nil, "entry %d", i))
	}
	release := g.holdNext(t, l)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		lost := fmt.Appendf(nil, "lost %d", i)
		if i%2 == 1 {
			lost = append(lost, make([]byte, 3*l.part)...) // stored in parts
		}
		wg.Go(func() { _, errs[i] = l.Append(bg, lost) })
	}
	waitQueued(t, l, n)
	held, hold := g.arm()
	release() // the blocker commits; the group's commit starts and waits
	<-held
	breakIt()
	close(hold)
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "boltlog: append at position ") {
			t.Fatalf("appender %d: error %v does not name its position", i, err)
		}
	}
	return errs
}

// A commit failure (as an fsync failure reports it) reaches every appender of
// the group, and the log refuses writes until reopened.
func TestCommitFailure(t *testing.T) {
	path := tempPath(t)
	g := &gate{}
	l := mustOpen(t, path, &Options{commitTx: g.commit})
	eio := fmt.Errorf("fdatasync: %w", syscall.EIO)
	errs := failGroup(t, l, g, 16, func() { g.setFail(eio) })
	failureCheck(t, path, l, errs, syscall.EIO, 6)
}

// A real write failure inside bbolt: the file descriptor under the log is
// closed while the group's commit is about to write, so bbolt's writes fail.
func TestWriteFailure(t *testing.T) {
	path := tempPath(t)
	var file *os.File
	g := &gate{}
	l := mustOpen(t, path, &Options{
		commitTx: g.commit,
		openFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
	errs := failGroup(t, l, g, 16, func() {
		if err := file.Close(); err != nil {
			t.Fatal(err)
		}
	})
	failureCheck(t, path, l, errs, os.ErrClosed, 6)
}

// Close racing appenders: no panic, no hang; every append either succeeded
// durably (readable after reopen) or returned ErrClosed.
func TestCloseWhileAppending(t *testing.T) {
	for round := range 5 {
		path := tempPath(t)
		l := mustOpen(t, path, &Options{NoSync: round > 0})
		const appenders = 16
		var (
			mu      sync.Mutex
			written = map[log.Position]string{}
			ok      atomic.Int64
			wg      sync.WaitGroup
		)
		for g := range appenders {
			wg.Go(func() {
				for i := 0; ; i++ {
					data := fmt.Sprintf("g%d-%d", g, i)
					p, err := l.Append(bg, []byte(data))
					if err != nil {
						if !errors.Is(err, log.ErrClosed) {
							t.Errorf("Append during Close: %v", err)
						}
						return
					}
					ok.Add(1)
					mu.Lock()
					written[p] = data
					mu.Unlock()
				}
			})
			wg.Go(func() { // readers race the close too
				for p := log.Position(0); ; p++ {
					_, err := l.Read(bg, p%64)
					if errors.Is(err, log.ErrClosed) {
						return
					}
					if err != nil && !errors.Is(err, log.ErrNotWritten) {
						t.Errorf("Read during Close: %v", err)
						return
					}
				}
			})
		}
		testutil.Eventually(t, testutil.WaitLong, func() bool { return ok.Load() >= 200 })
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		l = mustOpen(t, path, nil)
		for p, data := range written {
			wantRead(t, l, p, []byte(data), nil)
		}
		if tail := mustTail(t, l); int(tail) != len(written) {
			t.Fatalf("tail after reopen %d, but %d appends succeeded", tail, len(written))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Reads racing trims and the reclaimer see data or ErrTrimmed, never a hole.
func TestTrimWhileReading(t *testing.T) {
	l := mustOpen(t, tempPath(t), &Options{NoSync: true, ReclaimBatch: 16})
	defer l.Close()
	const n = 2000
	for i := range n {
		mustAppend(t, l, binary.BigEndian.AppendUint32(nil, uint32(i)))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := log.Position(rand.IntN(n))
				got, err := l.Read(bg, p)
				switch {
				case errors.Is(err, log.ErrTrimmed):
				case err != nil:
					t.Errorf("Read(%d) while trimming: %v", p, err)
					return
				case binary.BigEndian.Uint32(got) != uint32(p):
					t.Errorf("Read(%d) = %x", p, got)
					return
				}
			}
		})
	}
	for trim := log.Position(0); trim <= n; trim += 50 {
		if err := l.Trim(bg, trim); err != nil {
			t.Fatal(err)
		}
	}
	waitReclaimed(t, l, n)
	close(stop)
	wg.Wait()
}

// An entry with an unknown tag is reported as corrupt, never as data or junk.
func TestCorruptEntry(t *testing.T) {
	l := mustOpen(t, tempPath(t), &Options{NoSync: true})
	defer l.Close()
	mustAppend(t, l, []byte("x"))
	if err := l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEntries).Put(posKey(nil, 0), []byte{0x7f, 'x'})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(bg, 0); err == nil || !strings.Contains(err.Error(), "position 0: corrupt entry") {
		t.Fatalf("Read(corrupt) = %v", err)
	}
	if err := l.Fill(bg, 0); err == nil || !strings.Contains(err.Error(), "position 0: corrupt entry") {
		t.Fatalf("Fill(corrupt) = %v", err)
	}
}

// AppendBatch writes its entries in order in one commit (what else a batch
// must do, logtest's AppendBatch checks).
func TestAppendBatch(t *testing.T) {
	g := &gate{}
	l := mustOpen(t, tempPath(t), &Options{commitTx: g.commit})
	defer l.Close()
	var _ log.BatchAppender = l
	mustAppend(t, l, []byte("first"))
	before := g.commits.Load()
	pos, err := l.AppendBatch(bg, [][]byte{[]byte("a"), {}, []byte("c")})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.commits.Load() - before; got != 1 {
		t.Fatalf("batch of 3 took %d commits", got)
	}
	if len(pos) != 3 || pos[0] != 1 || pos[1] != 2 || pos[2] != 3 {
		t.Fatalf("positions %v", pos)
	}
	for i, want := range []string{"a", "", "c"} {
		wantRead(t, l, pos[i], []byte(want), nil)
	}
}

// entryKeys returns how many keys the entries bucket holds (heads and parts).
func entryKeys(t testing.TB, l *Log) int {
	t.Helper()
	n := 0
	if err := l.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketEntries).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func fileVersion(t testing.TB, l *Log) uint32 {
	t.Helper()
	var v uint32
	if err := l.db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyVersion))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// Entries larger than half a page are stored in parts, and read back whole,
// through Append and AppendBatch, before and after a reopen; each part is a
// key of its own.
func TestPartedEntries(t *testing.T) {
	path := tempPath(t)
	l := mustOpen(t, path, &Options{PageSize: 4096})
	part := l.part
	if part != 2012 {
		t.Fatalf("part size %d for 4 KiB pages, want 2012 (two parts fill a leaf)", part)
	}
	sizes := []int{0, 1, part - 2, part - 1, part, part + 1, 2*part - partsHeader, 2*part - partsHeader + 1, 5*part + 17, 100_000, log.MaxEntrySize}
	want := map[log.Position][]byte{}
	keys := 0
	keysFor := func(n int) int { // the head, then what it leaves in parts
		if 1+n <= part {
			return 1
		}
		rest := n - (part - partsHeader)
		return 1 + (rest+part-1)/part
	}
	for i, n := range sizes {
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(i*31 + j*7 + j>>11)
		}
		p := mustAppend(t, l, data)
		want[p] = data
		keys += keysFor(n)
	}
	var batch [][]byte
	for i := range 3 {
		batch = append(batch, bytes.Repeat([]byte{byte(i + 1)}, 3*part))
	}
	pos, err := l.AppendBatch(bg, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pos {
		want[p] = batch[i]
		keys += keysFor(3 * part)
	}
	check := func(l *Log) {
		t.Helper()
		for p, data := range want {
			got, err := l.Read(bg, p)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Read(%d) = %d bytes, %v; want %d bytes", p, len(got), err, len(data))
			}
		}
		if got := entryKeys(t, l); got != keys {
			t.Fatalf("%d keys in the entries bucket, want %d", got, keys)
		}
	}
	check(l)
	if v := fileVersion(t, l); v != formatVersion {
		t.Fatalf("version %d after parted appends", v)
	}
	tail := mustTail(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, path, nil)
	defer l.Close()
	check(l)
	if got := mustTail(t, l); got != tail {
		t.Fatalf("tail after reopen %d, want %d", got, tail)
	}
	if err := l.Fill(bg, pos[0]); !errors.Is(err, log.ErrWritten) {
		t.Fatalf("Fill of a parted entry: %v", err)
	}
	// Trimming past parted entries reclaims their parts too.
	if err := l.Trim(bg, tail); err != nil {
		t.Fatal(err)
	}
	waitReclaimed(t, l, uint64(tail))
	if n := entryKeys(t, l); n != 0 {
		t.Fatalf("%d keys left after trimming everything", n)
	}
}

// A version 1 file (no parts) is read as it is; it becomes version 2 only
// when a parted entry is written into it.
func TestVersion1File(t *testing.T) {
	path := tempPath(t)
	boltFile(t, path, func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		for _, kv := range [][2][]byte{{keyMagic, magic}, {keyVersion, {0, 0, 0, 1}}, {keyTrim, make([]byte, 8)}} {
			if err := meta.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		entries, err := tx.CreateBucket(bucketEntries)
		if err != nil {
			return err
		}
		big := append([]byte{tagData}, bytes.Repeat([]byte("v1"), 5000)...) // one value, as version 1 wrote it
		if err := entries.Put(posKey(nil, 0), big); err != nil {
			return err
		}
		return entries.Put(posKey(nil, 1), []byte{tagJunk})
	})
	l := mustOpen(t, path, nil)
	defer l.Close()
	wantRead(t, l, 0, bytes.Repeat([]byte("v1"), 5000), nil)
	wantRead(t, l, 1, nil, log.ErrFilled)
	if p := mustAppend(t, l, []byte("small")); p != 2 {
		t.Fatalf("append at %d, want 2", p)
	}
	if v := fileVersion(t, l); v != formatVersionV1 {
		t.Fatalf("version %d after a small append, want it left at 1", v)
	}
	big := bytes.Repeat([]byte("v2"), 5000)
	p := mustAppend(t, l, big)
	if v := fileVersion(t, l); v != formatVersion {
		t.Fatalf("version %d after a parted append, want %d", v, formatVersion)
	}
	wantRead(t, l, p, big, nil)
}

// A parted entry with a part missing, an extra part, or a bad head is
// reported as corrupt, naming the position; nothing panics.
func TestCorruptParts(t *testing.T) {
	for _, c := range []struct {
		name    string
		corrupt func(b *bolt.Bucket, p uint64) error
		wants   string
	}{
		{"missing part", func(b *bolt.Bucket, p uint64) error { return b.Delete(partKey(nil, p, 2)) }, "part 2 of a"},
		{"short part", func(b *bolt.Bucket, p uint64) error { return b.Put(partKey(nil, p, 1), []byte("x")) }, "part 1 of 1 bytes"},
		{"long part", func(b *bolt.Bucket, p uint64) error {
			return b.Put(partKey(nil, p, 3), bytes.Repeat([]byte("x"), 3000))
		}, "part 3 of 3000 bytes"},
		{"short head", func(b *bolt.Bucket, p uint64) error { return b.Put(posKey(nil, p), []byte{tagParts, 0}) }, "head of 2 bytes"},
		{"length over the limit", func(b *bolt.Bucket, p uint64) error {
			return b.Put(posKey(nil, p), []byte{tagParts, 0xff, 0xff, 0xff, 0xff})
		}, "parted entry of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := mustOpen(t, tempPath(t), &Options{NoSync: true, PageSize: 4096})
			defer l.Close()
			p := mustAppend(t, l, make([]byte, 4*l.part))
			if err := l.db.Update(func(tx *bolt.Tx) error { return c.corrupt(tx.Bucket(bucketEntries), uint64(p)) }); err != nil {
				t.Fatal(err)
			}
			_, err := l.Read(bg, p)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("position %d: corrupt entry", p)) || !strings.Contains(err.Error(), c.wants) {
				t.Fatalf("Read = %v, want a corrupt entry error with %q", err, c.wants)
			}
			// A range over the whole entry meets the same damage.
			if _, _, err := l.ReadRange(bg, p, 0, 4*l.part); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("position %d: corrupt entry", p)) {
				t.Fatalf("ReadRange = %v, want a corrupt entry error", err)
			}
		})
	}
}
