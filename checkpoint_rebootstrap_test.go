package cruzdb

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// findHeldLog is one node's view of a shared log whose reads a test can hold:
// every read at or above from until release is closed, and startup.Find's
// read of the position find (its safe point) until findRelease is closed.
type findHeldLog struct {
	log.Log
	mu          sync.Mutex
	from        log.Position // 0: hold nothing
	release     chan struct{}
	find        log.Position // 0: hold nothing
	findHeld    chan struct{}
	findRelease chan struct{}
	heldOnce    sync.Once
}

func (h *findHeldLog) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	h.mu.Lock()
	from, release, find := h.from, h.release, h.find
	h.mu.Unlock()
	if from != 0 && pos >= from {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if find != 0 && pos == find && inStartupFind() {
		h.heldOnce.Do(func() { close(h.findHeld) })
		select {
		case <-h.findRelease:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return h.Log.Read(ctx, pos)
}

func inStartupFind() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "cruzdb/startup.Find(")
}

// TestRebootstrapRacesTrim: a node that fell behind the trim point
// re-bootstraps; while its scan for the newest safe point holds the
// checkpoint it chose, another node checkpoints again and trims that
// checkpoint away. The scan must run again and find the newer checkpoint,
// not stop the node for good.
func TestRebootstrapRacesTrim(t *testing.T) {
	ctx := context.Background()
	l := memlog.New(nil)
	hl := &findHeldLog{Log: l, release: make(chan struct{}), findHeld: make(chan struct{}), findRelease: make(chan struct{})}
	// A stops replaying; B checkpoints and trims past A's replay position.
	a, b, tail := heldPair(t, l, hl, 5)
	var releaseOnce, findOnce sync.Once
	defer releaseOnce.Do(func() { close(hl.release) })
	defer findOnce.Do(func() { close(hl.findRelease) })
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	workload(t, b, 2, 5)
	first, err := b.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.TrimmedBelow != first.Position || first.Position <= tail {
		t.Fatalf("first checkpoint %+v: want a trim at its cut, above %d", first, tail)
	}
	// A resumes, meets the trim, and its re-bootstrap's scan picks the
	// first checkpoint; hold its read of that cut.
	hl.mu.Lock()
	hl.find = first.Position
	hl.mu.Unlock()
	releaseOnce.Do(func() { close(hl.release) })
	select {
	case <-hl.findHeld:
	case <-time.After(time.Minute):
		t.Fatal("the re-bootstrap never read the first checkpoint's cut")
	}
	// Meanwhile B checkpoints again and trims the first checkpoint away.
	workload(t, b, 3, 5)
	second, err := b.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.TrimmedBelow != second.Position || second.Position <= first.Position {
		t.Fatalf("second checkpoint %+v: want a trim at its cut, above %d", second, first.Position)
	}
	findOnce.Do(func() { close(hl.findRelease) })
	// A must be alive and agree with B. It commits only once it has caught
	// up: a commit made while the re-bootstrap still runs may land in the
	// range it skips, and ends with ErrCommitUnknown by design.
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("node A after the raced re-bootstrap: %v", err)
	}
	if a.Stats().Rebootstraps == 0 {
		t.Fatal("node A never re-bootstrapped")
	}
	workload(t, a, 4, 5)
	sameState(t, a, b)
}

// TestCommitSkippedByRebootstrap: a node commits while its replay is held
// behind; another node checkpoints and trims past that intention; once
// released, the node re-bootstraps past it and the commit ends with
// ErrCommitUnknown saying so, not claiming the database closed. The node
// stays open and agrees with the other.
func TestCommitSkippedByRebootstrap(t *testing.T) {
	ctx := context.Background()
	l := memlog.New(nil)
	hl := &findHeldLog{Log: l, release: make(chan struct{})}
	a, b, tail := heldPair(t, l, hl, 3) // A's replay stops at tail
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(hl.release) })

	done := make(chan error, 1)
	go func() {
		tx, err := a.Begin(ctx, true)
		if err != nil {
			done <- err
			return
		}
		if err := tx.Put([]byte("skipped"), []byte("v")); err != nil {
			done <- err
			return
		}
		done <- tx.Commit()
	}()
	// B sees A's intention, then checkpoints and trims past it.
	testutil.Eventually(t, time.Minute, func() bool {
		t2, err := l.Tail(ctx)
		return err == nil && t2 > tail
	})
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	workload(t, b, 2, 3)
	info, err := b.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.TrimmedBelow <= tail {
		t.Fatalf("checkpoint %+v: want a trim above A's intention at %d", info, tail)
	}
	releaseOnce.Do(func() { close(hl.release) })
	err = <-done
	if !errors.Is(err, ErrCommitUnknown) || errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "trimmed") {
		t.Fatalf("commit skipped by the re-bootstrap: %v; want ErrCommitUnknown naming the trim, not ErrClosed", err)
	}
	sameState(t, a, b)
}

// heldPair opens node A on hl and node B on l (the same log), without
// automatic checkpoints, commits txns transactions on A, and then holds A's
// reads from the log's tail on (until hl.release is closed), which it
// returns.
func heldPair(t *testing.T, l log.Log, hl *findHeldLog, txns int) (a, b *DB, tail log.Position) {
	t.Helper()
	ctx := context.Background()
	a, err := Open("", &Options{Log: hl, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = Open("", &Options{Log: l, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	workload(t, a, 1, txns)
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if tail, err = l.Tail(ctx); err != nil {
		t.Fatal(err)
	}
	hl.mu.Lock()
	hl.from = tail
	hl.mu.Unlock()
	return a, b, tail
}

// sameState catches both nodes up with the log and requires equal contents.
func sameState(t *testing.T, a, b *DB) {
	t.Helper()
	for i, db := range []*DB{a, b} {
		if err := db.Sync(context.Background()); err != nil {
			t.Fatalf("node %c: %v", 'A'+i, err)
		}
	}
	if da, db := dump(t, a), dump(t, b); da != db {
		t.Fatalf("nodes differ:\nA:\n%s\nB:\n%s", da, db)
	}
	for i, db := range []*DB{a, b} {
		checkTree(t, db, 'A'+rune(i))
	}
}

// checkTree verifies the invariants of db's latest tree (cowtree.Tree.Check),
// again on a newer version when a peer trimmed the log under the walk.
func checkTree(t *testing.T, db *DB, name rune) {
	t.Helper()
	for try := 0; ; try++ {
		v := db.cur.Load()
		err := v.tree.Check()
		if err == nil {
			return
		}
		if !errors.Is(err, log.ErrTrimmed) || try == 20 {
			t.Fatalf("node %c at %d: %v", name, v.pos, err)
		}
		if err := db.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
