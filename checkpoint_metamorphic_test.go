package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestTwoNodeCheckpointMetamorphic is issue 19's two-node metamorphic test
// (from the independent review of checkpoints and trimming): a randomized,
// seeded workload on two nodes of one memlog, checked against a map model
// kept per committed position. Replay a failure with CRUZDB_SEED=<seed>.

// mmState is the model after a committed position.
type mmState struct {
	pos uint64
	kv  map[string]string
	lw  map[string]uint64 // live keys: position of their last put
}

type mmModel struct {
	states []mmState // ascending pos; states[0] is the empty start
}

func newMMModel() *mmModel {
	return &mmModel{states: []mmState{{kv: map[string]string{}, lw: map[string]uint64{}}}}
}

func (m *mmModel) cur() mmState { return m.states[len(m.states)-1] }

// at returns the model after position p: the newest commit at or below p.
func (m *mmModel) at(p uint64) mmState {
	i := sort.Search(len(m.states), func(i int) bool { return m.states[i].pos > p })
	return m.states[i-1]
}

// commit records the ops (nil value: delete) committed at pos.
func (m *mmModel) commit(pos uint64, ops map[string]*string) error {
	last := m.cur()
	if pos <= last.pos {
		return fmt.Errorf("commit at %d after a commit at %d", pos, last.pos)
	}
	kv, lw := mmCopyKV(last.kv), mmCopyLW(last.lw)
	for k, v := range ops {
		if v == nil {
			delete(kv, k)
			delete(lw, k)
		} else {
			kv[k], lw[k] = *v, pos
		}
	}
	m.states = append(m.states, mmState{pos: pos, kv: kv, lw: lw})
	return nil
}

func mmCopyKV(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func mmCopyLW(m map[string]uint64) map[string]uint64 {
	c := make(map[string]uint64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// mmCheckState compares db's latest state with the model: every key and
// value, and the position of the last write of every live key.
func mmCheckState(db *DB, want mmState) error {
	return db.View(context.Background(), func(tx *Txn) error {
		got := map[string]string{}
		for k, v := range tx.Range(nil, nil) {
			got[string(k)] = string(v)
		}
		if err := tx.Err(); err != nil {
			return fmt.Errorf("scan at %d: %w", tx.Snapshot(), err)
		}
		if dumpMap(got) != dumpMap(want.kv) {
			return fmt.Errorf("state at %d differs from the model at %d:\n got %s\nwant %s", tx.Snapshot(), want.pos, dumpMap(got), dumpMap(want.kv))
		}
		for k, p := range want.lw {
			lw, err := tx.LastWrite([]byte(k))
			if err != nil {
				return fmt.Errorf("last write of %s: %w", k, err)
			}
			if uint64(lw) != p {
				return fmt.Errorf("last write of %s at %d, model %d", k, lw, p)
			}
		}
		return nil
	})
}

type mmSnap struct {
	tx   *Txn
	node int
	pos  uint64
}

type mmRun struct {
	t      *testing.T
	r      *rand.Rand
	l      *memlog.Log
	nodes  [2]*DB
	held   bool
	hl     *heldLog
	model  *mmModel
	snaps  []*mmSnap
	bg     sync.WaitGroup
	bgMu   sync.Mutex
	bgErrs []error
	stats  map[string]int
	vals   int
}

func (rr *mmRun) key() string { return fmt.Sprintf("k%03d", rr.r.IntN(80)) }

func (rr *mmRun) value() string {
	rr.vals++
	return fmt.Sprintf("v%d-%s", rr.vals, strings.Repeat("x", rr.r.IntN(120)))
}

// usable reports whether node i may run an operation that reads the log
// (node 1's reads are held while held is set).
func (rr *mmRun) usable(i int) bool { return i == 0 || !rr.held }

func (rr *mmRun) commit(i int) {
	t, ctx := rr.t, context.Background()
	db := rr.nodes[i]
	tx, err := db.Begin(ctx, true)
	if err != nil {
		t.Fatalf("begin on node %d: %v", i, err)
	}
	ops := map[string]*string{}
	for range 1 + rr.r.IntN(4) {
		k := rr.key()
		if rr.r.IntN(4) == 0 {
			tx.Delete([]byte(k))
			ops[k] = nil
		} else {
			v := rr.value()
			tx.Put([]byte(k), []byte(v))
			ops[k] = &v
		}
	}
	if err := tx.Commit(); err != nil {
		if !errors.Is(err, ErrCommitUnknown) || tx.Position() == 0 {
			t.Fatalf("blind commit on node %d at %d (snapshot %d): %v", i, tx.Position(), tx.Snapshot(), err)
		}
		// The node fell behind a trim and skipped the intention
		// (re-bootstrapping): the log decided; learn it from node A.
		rr.stats["unknown"]++
		if !rr.outcome(uint64(tx.Position()), ops) {
			return
		}
	}
	if err := rr.model.commit(uint64(tx.Position()), ops); err != nil {
		t.Fatal(err)
	}
	rr.stats["commit"]++
}

// outcome reports whether the blind intention at pos, whose commit ended
// unknown, committed: node A, synced past it, shows a put's unique value or
// pos as the last write of a key it wrote.
func (rr *mmRun) outcome(pos uint64, ops map[string]*string) bool {
	a := rr.nodes[0]
	if err := a.Sync(context.Background()); err != nil {
		rr.t.Fatal(err)
	}
	committed := false
	err := a.View(context.Background(), func(tx *Txn) error {
		for k, v := range ops {
			lw, err := tx.LastWrite([]byte(k))
			if err != nil {
				return err
			}
			got, err := tx.Get([]byte(k))
			if uint64(lw) == pos || v != nil && err == nil && string(got) == *v {
				committed = true
			}
		}
		return nil
	})
	if err != nil {
		rr.t.Fatalf("outcome of %d: %v", pos, err)
	}
	return committed
}

// read checks one read through snapshot s against the model; it returns
// false if the snapshot met the trim (and is dropped).
func (rr *mmRun) read(s *mmSnap) bool {
	t := rr.t
	want := rr.model.at(s.pos)
	fail := func(what string, err error) bool {
		if !errors.Is(err, log.ErrTrimmed) {
			t.Fatalf("node %d snapshot %d: %s: %v\nnode A %s\nnode B %s", s.node, s.pos, what, err, summary(rr.nodes[0].Stats()), summary(rr.nodes[1].Stats()))
		}
		// A snapshot at or above the log's trim point holds only nodes
		// of the newest cut at or below it, or later: nothing trimmed.
		if tp := logTrimPoint(t, rr.l); s.pos >= tp {
			t.Fatalf("node %d snapshot %d at or above the trim point %d: %s: %v", s.node, s.pos, tp, what, err)
		}
		rr.stats["trimmed-read"]++
		return false
	}
	if rr.r.IntN(2) == 0 {
		k := rr.key()
		got, err := s.tx.Get([]byte(k))
		wv, ok := want.kv[k]
		switch {
		case errors.Is(err, ErrNotFound):
			if ok {
				t.Fatalf("node %d snapshot %d: %s not found, model %q", s.node, s.pos, k, wv)
			}
		case err != nil:
			return fail("get "+k, err)
		case !ok || string(got) != wv:
			t.Fatalf("node %d snapshot %d: %s = %q, model %q (%v)", s.node, s.pos, k, got, wv, ok)
		}
		rr.stats["get"]++
		return true
	}
	lo, hi := rr.key(), rr.key()
	if hi < lo {
		lo, hi = hi, lo
	}
	reverse := rr.r.IntN(2) == 0
	scan := s.tx.Range
	if reverse {
		scan = s.tx.RangeReverse
	}
	var got []string
	for k, v := range scan([]byte(lo), []byte(hi)) {
		got = append(got, string(k)+"="+string(v))
	}
	if err := s.tx.Err(); err != nil {
		return fail("range "+lo+".."+hi, err)
	}
	var wantKV []string
	for k, v := range want.kv {
		if k >= lo && k < hi {
			wantKV = append(wantKV, k+"="+v)
		}
	}
	slices.Sort(wantKV)
	if reverse {
		slices.Reverse(wantKV)
	}
	if !slices.Equal(got, wantKV) {
		t.Fatalf("node %d snapshot %d: range [%s,%s) reverse=%v: %v, model %v", s.node, s.pos, lo, hi, reverse, got, wantKV)
	}
	rr.stats["range"]++
	return true
}

func (rr *mmRun) checkpoint(i int) {
	t := rr.t
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	info, err := rr.nodes[i].Checkpoint(ctx)
	if err != nil {
		t.Fatalf("checkpoint on node %d: %v", i, err)
	}
	rr.checkInfo(i, info)
	rr.stats["checkpoint"]++
}

// checkInfo: a checkpoint's trim never passes an open snapshot of its node.
func (rr *mmRun) checkInfo(i int, info CheckpointInfo) {
	if info.Position == 0 || info.Marker <= info.Position {
		rr.t.Fatalf("node %d: checkpoint info %+v", i, info)
	}
	for _, s := range rr.snaps {
		if s.node == i && uint64(info.TrimmedBelow) > s.pos {
			rr.t.Fatalf("node %d trimmed below %d with its snapshot at %d open (%+v)", i, info.TrimmedBelow, s.pos, info)
		}
	}
}

func (rr *mmRun) bgCheckpoint(i int) {
	rr.bg.Add(1)
	go func() {
		defer rr.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if _, err := rr.nodes[i].Checkpoint(ctx); err != nil {
			rr.bgMu.Lock()
			rr.bgErrs = append(rr.bgErrs, fmt.Errorf("background checkpoint on node %d: %w", i, err))
			rr.bgMu.Unlock()
		}
	}()
	rr.stats["bg-checkpoint"]++
}

// duplicate asks both nodes for a checkpoint at once.
func (rr *mmRun) duplicate() {
	var wg sync.WaitGroup
	var infos [2]CheckpointInfo
	var errs [2]error
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			infos[i], errs[i] = rr.nodes[i].Checkpoint(ctx)
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			rr.t.Fatalf("duplicate checkpoint on node %d: %v", i, errs[i])
		}
	}
	rr.stats["duplicate"]++
}

// reopen opens a crash clone of the log twice (CheckpointSerial random),
// checks both against the model and each other, checkpoints on one, and
// reopens what that left.
func (rr *mmRun) reopen() {
	t := rr.t
	clone := rr.l.CrashClone()
	want := rr.model.cur()
	var safe []uint64
	for round := range 3 {
		c := clone
		if round < 2 {
			c = clone.CrashClone()
		}
		o := &Options{Log: c, CacheBytes: 4 << 10, CheckpointLogRatio: -1, CheckpointSerial: rr.r.IntN(2) == 0}
		db, err := Open("", o)
		if err != nil {
			t.Fatalf("reopen %d of a crash clone: %v", round, err)
		}
		if err := mmCheckState(db, want); err != nil {
			db.Close()
			t.Fatalf("reopen %d of a crash clone (serial %v): %v", round, o.CheckpointSerial, err)
		}
		safe = append(safe, db.SafePoint().Intention)
		if round == 1 {
			info, err := db.Checkpoint(context.Background())
			if err != nil {
				db.Close()
				t.Fatalf("checkpoint on the reopened clone: %v", err)
			}
			if err := mmCheckState(db, want); err != nil {
				db.Close()
				t.Fatalf("after a checkpoint at %d on the reopened clone: %v", info.Position, err)
			}
		}
		db.Close()
	}
	if safe[0] != safe[1] {
		t.Fatalf("two recoveries of one crash clone resumed at %d and %d", safe[0], safe[1])
	}
	rr.stats["reopen"]++
}

// fresh opens a new node on the live log and checks it against the model.
// It starts from the newest checkpoint: its safe point is at or above the
// trim point the log had before Open, so it reads nothing trimmed.
func (rr *mmRun) fresh() {
	t := rr.t
	tp := logTrimPoint(t, rr.l)
	db, err := Open("", &Options{Log: rr.l, CacheBytes: 4 << 10, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatalf("fresh node: %v", err)
	}
	defer db.Close()
	if sp := db.SafePoint(); tp > 0 && sp.Intention < tp {
		t.Fatalf("fresh node resumed at %d, below the trim point %d", sp.Intention, tp)
	}
	if err := mmCheckState(db, rr.model.cur()); err != nil {
		t.Fatalf("fresh node: %v", err)
	}
	rr.stats["fresh"]++
}

func (rr *mmRun) sync(i int) {
	if err := rr.nodes[i].Sync(context.Background()); err != nil {
		rr.t.Fatalf("sync node %d: %v", i, err)
	}
	if err := mmCheckState(rr.nodes[i], rr.model.cur()); err != nil {
		rr.t.Fatalf("node %d after sync: %v", i, err)
	}
	rr.stats["sync"]++
}

func (rr *mmRun) options() *Options {
	o := &Options{
		CacheBytes:       []int64{2 << 10, 16 << 10, 1 << 20}[rr.r.IntN(3)],
		CheckpointSerial: rr.r.IntN(2) == 0,
	}
	if rr.r.IntN(2) == 0 {
		o.CheckpointLogRatio, o.CheckpointMinLogBytes = 0.5, 8<<10
	} else {
		o.CheckpointLogRatio = -1
	}
	o.FlushPolicy = []flusher.Policy{flusher.PolicyTakeover, flusher.PolicyAll, flusher.PolicyOriginator}[rr.r.IntN(3)]
	return o
}

// TestTwoNodeCheckpointMetamorphic: random commits on two nodes of one
// memlog (one sometimes held behind), snapshots read at random, checkpoints
// (synchronous, background, duplicated on both nodes) at random points,
// crash clones reopened, fresh nodes opened on the trimmed log. Every read
// returns the model's value at its snapshot, or an error wrapping
// log.ErrTrimmed for a snapshot below the log's trim point; every node and
// every recovery reaches the model's state.
func TestTwoNodeCheckpointMetamorphic(t *testing.T) {
	seed := testutil.Seed(t, uint64(time.Now().UnixNano()))
	r := rand.New(rand.NewPCG(seed, 19))
	rr := &mmRun{t: t, r: r, l: memlog.New(&memlog.Options{Seed: seed}), model: newMMModel(), stats: map[string]int{}}
	oa := rr.options()
	oa.Log = rr.l
	a, err := Open("", oa)
	if err != nil {
		t.Fatal(err)
	}
	rr.hl = &heldLog{Log: rr.l}
	ob := rr.options()
	ob.Log = rr.hl
	b, err := Open("", ob)
	if err != nil {
		t.Fatal(err)
	}
	rr.nodes = [2]*DB{a, b}
	t.Logf("node A %+v", *oa)
	t.Logf("node B %+v", *ob)
	defer func() {
		if rr.held {
			rr.hl.release()
		}
		rr.bg.Wait()
		for _, s := range rr.snaps {
			s.tx.Rollback()
		}
		a.Close()
		b.Close()
	}()
	const steps = 500
	for step := range steps {
		switch op := r.IntN(100); {
		case op < 40:
			i := r.IntN(2)
			if !rr.usable(i) {
				i = 0
			}
			rr.commit(i)
		case op < 50:
			i := r.IntN(2)
			if len(rr.snaps) < 6 && rr.usable(i) {
				tx, err := rr.nodes[i].Begin(context.Background(), false)
				if err != nil {
					t.Fatal(err)
				}
				rr.snaps = append(rr.snaps, &mmSnap{tx: tx, node: i, pos: uint64(tx.Snapshot())})
			}
		case op < 70:
			if len(rr.snaps) == 0 {
				continue
			}
			j := r.IntN(len(rr.snaps))
			s := rr.snaps[j]
			if !rr.usable(s.node) {
				continue
			}
			if !rr.read(s) || r.IntN(8) == 0 {
				s.tx.Rollback()
				rr.snaps = slices.Delete(rr.snaps, j, j+1)
			}
		case op < 76:
			i := r.IntN(2)
			if rr.usable(i) {
				rr.checkpoint(i)
			}
		case op < 80:
			rr.bgCheckpoint(0)
		case op < 82:
			if !rr.held {
				rr.duplicate()
			}
		case op < 87:
			if rr.held {
				rr.hl.release()
				rr.held = false
				rr.sync(1)
			} else {
				rr.hl.hold()
				rr.held = true
			}
		case op < 90:
			rr.reopen()
		case op < 92:
			rr.fresh()
		default:
			i := r.IntN(2)
			if rr.usable(i) {
				rr.sync(i)
			}
		}
		_ = step
	}
	if rr.held {
		rr.hl.release()
		rr.held = false
	}
	rr.bg.Wait()
	for _, err := range rr.bgErrs {
		t.Error(err)
	}
	for _, s := range rr.snaps {
		if rr.read(s) {
			rr.read(s)
		}
	}
	rr.sync(0)
	rr.sync(1)
	rr.checkpoint(0)
	rr.sync(1)
	rr.fresh()
	rr.reopen()
	t.Logf("ops %v; node A %+v; node B %+v", rr.stats, summary(a.Stats()), summary(b.Stats()))
	if rr.stats["checkpoint"]+rr.stats["duplicate"] == 0 || a.Stats().Checkpoints == 0 {
		t.Fatal("no checkpoint ran")
	}
}
