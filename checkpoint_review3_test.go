package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestReviewCrashBetweenMarkerAndTrim holds the first trim of a checkpoint
// at the log (the marker is durable, the trim not done) and takes a crash
// clone there, while commits go on. Recovery, with CheckpointSerial as it
// was and flipped, resumes from the new checkpoint, loses nothing
// acknowledged, and can checkpoint and trim the clone itself; released,
// the original finishes its trim.
func TestReviewCrashBetweenMarkerAndTrim(t *testing.T) {
	for _, serial := range []bool{false, true} {
		t.Run(fmt.Sprintf("serial=%v", serial), func(t *testing.T) {
			ctx := context.Background()
			gate := memlog.NewGate()
			var armed atomic.Bool
			var held atomic.Uint64
			l := memlog.New(&memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
				if c.Op == memlog.OpTrim && armed.Load() && held.CompareAndSwap(0, uint64(c.Pos)) {
					return memlog.Fault{Hold: gate}
				}
				return memlog.Fault{}
			}})
			a, err := Open("", &Options{Log: l, CheckpointLogRatio: -1, CheckpointSerial: serial, CacheBytes: 4 << 10})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			defer gate.Release() // before Close: a held trim would keep Close waiting
			workload(t, a, 1, 80)
			if _, err := a.Checkpoint(ctx); err != nil { // a first trim: the clone meets a trimmed log
				t.Fatal(err)
			}
			workload(t, a, 2, 80)
			armed.Store(true)
			done := make(chan CheckpointInfo, 1)
			go func() {
				info, err := a.Checkpoint(ctx)
				if err != nil {
					t.Error(err)
				}
				done <- info
			}()
			<-gate.Held()
			cut := held.Load()
			if !serial {
				// Commits go on while the trim is held (pipelined mode).
				workload(t, a, 3, 20)
			}
			if err := a.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			acked := dump(t, a)
			clone := l.CrashClone()
			if tp := logTrimPoint(t, clone); tp >= cut {
				t.Fatalf("clone trimmed below %d, the held trim was to %d", tp, cut)
			}
			resumed := 0
			for _, s := range []bool{serial, !serial} {
				c := clone.CrashClone()
				db, err := Open("", &Options{Log: c, CheckpointLogRatio: -1, CheckpointSerial: s, CacheBytes: 4 << 10})
				if err != nil {
					t.Fatal(err)
				}
				sp := db.SafePoint()
				if sp.Intention < cut {
					db.Close()
					t.Fatalf("serial=%v: recovery resumed at %d (checkpoint %v), the checkpoint at %d had authority", s, sp.Intention, sp.Marker != nil, cut)
				}
				if sp.Marker != nil {
					resumed++
				}
				if got := dump(t, db); got != acked {
					db.Close()
					t.Fatalf("serial=%v: recovered state differs from the acknowledged one", s)
				}
				info, err := db.Checkpoint(ctx)
				if err != nil || info.TrimmedBelow == 0 || uint64(info.TrimmedBelow) < cut {
					db.Close()
					t.Fatalf("serial=%v: checkpoint on the recovered clone: %+v, %v", s, info, err)
				}
				db.Close()
				again, err := Open("", &Options{Log: c, CheckpointLogRatio: -1, CheckpointSerial: !s})
				if err != nil {
					t.Fatal(err)
				}
				if got := dump(t, again); got != acked {
					again.Close()
					t.Fatalf("serial=%v: state after the clone's own trim differs", s)
				}
				again.Close()
			}
			t.Logf("cut %d; recoveries from the checkpoint itself: %d of 2", cut, resumed)
			gate.Release()
			info := <-done
			if uint64(info.TrimmedBelow) < cut {
				t.Fatalf("original trimmed below %d after the release, cut %d", info.TrimmedBelow, cut)
			}
			if got := dump(t, a); got != acked {
				t.Fatal("original state changed")
			}
		})
	}
}

// TestReviewTrimAckLost: the log trims but the reply is lost. Checkpoint
// reports the error, or succeeds if the background trim loop met the lost
// reply first and its own trim went through; the next checkpoint trims
// again, and a fresh node reaches the same state.
func TestReviewTrimAckLost(t *testing.T) {
	ctx := context.Background()
	var lose atomic.Bool
	l := memlog.New(&memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpTrim && lose.CompareAndSwap(true, false) {
			return memlog.Fault{AckLost: true}
		}
		return memlog.Fault{}
	}})
	a, err := Open("", &Options{Log: l, CheckpointLogRatio: -1, CacheBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	workload(t, a, 5, 60)
	lose.Store(true)
	info, err := a.Checkpoint(ctx)
	if err != nil && !errors.Is(err, memlog.ErrInjected) || lose.Load() {
		t.Fatalf("checkpoint with a lost trim reply: %+v, %v", info, err)
	}
	if tp := logTrimPoint(t, l); tp != uint64(info.Position) {
		t.Fatalf("log trimmed below %d, cut %d", tp, info.Position)
	}
	workload(t, a, 6, 60)
	info2, err := a.Checkpoint(ctx)
	if err != nil || info2.TrimmedBelow != info2.Position {
		t.Fatalf("next checkpoint: %+v, %v", info2, err)
	}
	want := dump(t, a)
	b, err := Open("", &Options{Log: l.CrashClone(), CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if dump(t, b) != want {
		t.Fatal("fresh node differs")
	}
}

// TestReviewFreshNodeReadsNothingBelowTrim: a node opened on a trimmed log
// reads below the trim point only to find it (binary searches that each
// cost log2(tail) reads), and reaches the state of the node that trimmed.
func TestReviewFreshNodeReadsNothingBelowTrim(t *testing.T) {
	ctx := context.Background()
	l := memlog.New(nil)
	a, err := Open("", &Options{Log: l, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i := range 4 {
		workload(t, a, uint64(10+i), 100)
		if _, err := a.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	workload(t, a, 20, 30)
	want := dump(t, a)
	clone := l.CrashClone()
	tp := logTrimPoint(t, clone)
	tail, _ := clone.Tail(ctx)
	var below, total atomic.Int64
	clone.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpRead {
			total.Add(1)
			if uint64(c.Pos) < tp {
				below.Add(1)
			}
		}
		return memlog.Fault{}
	})
	b, err := Open("", &Options{Log: clone, CheckpointLogRatio: -1, CacheBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := dump(t, b); got != want {
		t.Fatal("fresh node differs from the node that trimmed")
	}
	limit := int64(3 * (bits.Len64(uint64(tail)) + 2))
	t.Logf("trim point %d, tail %d: %d reads below the trim point, %d in all", tp, tail, below.Load(), total.Load())
	if tp == 0 || below.Load() > limit {
		t.Fatalf("fresh node read %d positions below the trim point %d (limit %d)", below.Load(), tp, limit)
	}
}

// TestReviewCheckpointRacesClose: checkpoints run
// while the DB closes. Every call returns, Close returns, and reopening the
// log gives every acknowledged commit.
func TestReviewCheckpointRacesClose(t *testing.T) {
	seed := testutil.Seed(t, uint64(time.Now().UnixNano()))
	r := rand.New(rand.NewPCG(seed, 5))
	ctx := context.Background()
	for round := range 8 {
		l := memlog.New(&memlog.Options{Seed: seed + uint64(round)})
		serial := r.IntN(2) == 0
		// Automatic checkpoints are off: with them on, the workload itself
		// sometimes fails with a corruption error (see the review report).
		db, err := Open("", &Options{Log: l, CheckpointSerial: serial, CheckpointLogRatio: -1, CacheBytes: 4 << 10})
		if err != nil {
			t.Fatal(err)
		}
		workload(t, db, uint64(round), 30)
		acked := dump(t, db)
		var wg sync.WaitGroup
		var unexpected atomic.Pointer[error]
		for range 3 {
			n := 1 + r.IntN(3)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n {
					_, err := db.Checkpoint(ctx)
					if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrCheckpoint) {
						unexpected.Store(&err)
					}
				}
			}()
		}
		for range r.IntN(50) { // a random head start for the checkpoints, in yields, not time
			runtime.Gosched()
		}
		closed := make(chan error, 1)
		go func() { closed <- db.Close() }()
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		waitFor(t, fmt.Sprintf("round %d (serial %v): checkpoints and Close to return", round, serial), func() bool {
			select {
			case <-finished:
			default:
				return false
			}
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("close: %v", err)
				}
				return true
			default:
				return false
			}
		})
		if p := unexpected.Load(); p != nil {
			t.Fatalf("round %d: checkpoint racing Close: %v", round, *p)
		}
		again, err := Open("", &Options{Log: l, CheckpointLogRatio: -1})
		if err != nil {
			t.Fatal(err)
		}
		if got := dump(t, again); got != acked {
			again.Close()
			t.Fatalf("round %d: state after reopen differs", round)
		}
		again.Close()
	}
}

var _ = log.ErrTrimmed
