package processor_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/internal/testutil/fixture"
	"github.com/cruzlog/cruzdb/processor"
)

func hdr(window uint64) entry.Header {
	return fixture.Header(window, 32, 4096)
}

func put(k, v string) intention.Op {
	return intention.Op{Kind: intention.OpPut, Key: []byte(k), Value: []byte(v)}
}

func del(k string) intention.Op { return intention.Op{Kind: intention.OpDelete, Key: []byte(k)} }

func keys(ks ...string) [][]byte {
	out := make([][]byte, len(ks))
	for i, k := range ks {
		out[i] = []byte(k)
	}
	return out
}

// bound turns "" into an unbounded (nil) range end.
func bound(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func rng(lo, hi string) intention.Range { return intention.Range{Lo: bound(lo), Hi: bound(hi)} }

// apply applies in at pos and fails the test on an error.
func apply(t *testing.T, st *processor.State, pos uint64, in *intention.Intention) (processor.Decision, *processor.Delta) {
	t.Helper()
	d, delta, err := st.Apply(pos, in)
	if err != nil {
		t.Fatalf("apply %d: %v", pos, err)
	}
	if d.Pos != pos || d.Snapshot != in.Snapshot || d.Token != in.Token {
		t.Fatalf("apply %d: decision %+v does not describe the intention", pos, d)
	}
	if (d.Outcome == processor.Committed) != (delta != nil) {
		t.Fatalf("apply %d: outcome %v with delta %v", pos, d.Outcome, delta != nil)
	}
	if st.Pos() != pos {
		t.Fatalf("apply %d: state at %d", pos, st.Pos())
	}
	return d, delta
}

// mustCommit applies in at pos and fails unless it commits.
func mustCommit(t *testing.T, st *processor.State, pos uint64, in *intention.Intention) *processor.Delta {
	t.Helper()
	d, delta := apply(t, st, pos, in)
	if d.Outcome != processor.Committed {
		t.Fatalf("position %d: %v (key %q pos %d, %s), want committed", pos, d.Outcome, d.ConflictKey, d.ConflictPos, d.Reason)
	}
	return delta
}

func expectConflict(t *testing.T, d processor.Decision, key string, pos uint64) {
	t.Helper()
	if d.Outcome != processor.Conflict || string(d.ConflictKey) != key || d.ConflictPos != pos {
		t.Fatalf("got %v key %q pos %d, want conflict on %q written at %d", d.Outcome, d.ConflictKey, d.ConflictPos, key, pos)
	}
}

func get(t *testing.T, tr cowtree.Tree, k string) (string, bool) {
	t.Helper()
	v, ok, err := tr.Get([]byte(k))
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

// dumpTree lists every entry of tr, tombstones included, as key@pos=value
// or key@pos=<tomb>.
func dumpTree(t *testing.T, tr cowtree.Tree) string {
	t.Helper()
	var b strings.Builder
	it := tr.Ascend(nil).WithTombstones()
	for it.Next() {
		n := it.Node()
		if n.Tombstone() {
			fmt.Fprintf(&b, "%s@%d=<tomb> ", n.Key(), n.Pos())
		} else {
			fmt.Fprintf(&b, "%s@%d=%s ", n.Key(), n.Pos(), n.Value())
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// seeded returns a state at position 1 holding the given keys, written at 1.
func seeded(t *testing.T, h entry.Header, ks ...string) *processor.State {
	t.Helper()
	st := processor.NewState(h, cowtree.New(nil), 0)
	in := &intention.Intention{Snapshot: 0}
	for _, k := range ks {
		in.Ops = append(in.Ops, put(k, "v-"+k))
	}
	mustCommit(t, st, 1, in)
	return st
}

func TestCommitAppliesOps(t *testing.T) {
	st := processor.NewState(hdr(100), cowtree.New(nil), 0)
	if st.Pos() != 0 || st.Header().ConflictWindow != 100 {
		t.Fatalf("new state: pos %d header %+v", st.Pos(), st.Header())
	}
	before := st.Tree()
	in := &intention.Intention{Snapshot: 0, Token: 77, Ops: []intention.Op{
		put("b", "1"), put("a", "2"), put("c", "3"), put("b", "4"), del("c"),
	}}
	delta := mustCommit(t, st, 1, in)
	if delta.Pos != 1 {
		t.Fatalf("delta pos %d", delta.Pos)
	}
	if got := dumpTree(t, st.Tree()); got != "a@1=2 b@1=4 c@1=<tomb> " {
		t.Fatalf("tree %q", got)
	}
	if got := dumpTree(t, delta.Tree); got != dumpTree(t, st.Tree()) {
		t.Fatalf("delta tree %q differs from the state's", got)
	}
	// The previous version is untouched.
	if got := dumpTree(t, before); got != "" {
		t.Fatalf("old version changed: %q", got)
	}
	// Nodes: every node of the new tree, post-order, root last, with the
	// intention address (1, i); Bytes is their memory.
	if len(delta.Nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(delta.Nodes))
	}
	root, err := delta.Tree.RootNode()
	if err != nil {
		t.Fatal(err)
	}
	if delta.Nodes[len(delta.Nodes)-1] != root {
		t.Fatal("the root is not the last node")
	}
	var bytes int64
	for i, n := range delta.Nodes {
		if n.Addr() != (cowtree.Addr{Kind: cowtree.AddrIntention, Pos: 1, Off: uint32(i)}) || n.Off() != uint32(i) || n.Delta() != 1 {
			t.Fatalf("node %d: addr %v off %d delta %d", i, n.Addr(), n.Off(), n.Delta())
		}
		bytes += n.Size()
	}
	if delta.Bytes != bytes {
		t.Fatalf("Bytes %d, nodes hold %d", delta.Bytes, bytes)
	}

	// A second commit copies only the path it changes.
	delta2 := mustCommit(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("a", "5")}})
	if len(delta2.Nodes) != 2 {
		t.Fatalf("update of a leaf made %d nodes, want 2 (leaf and root)", len(delta2.Nodes))
	}
	if got := dumpTree(t, st.Tree()); got != "a@2=5 b@1=4 c@1=<tomb> " {
		t.Fatalf("tree %q", got)
	}
	if got := dumpTree(t, delta.Tree); got != "a@1=2 b@1=4 c@1=<tomb> " {
		t.Fatalf("version 1 changed: %q", got)
	}
}

func TestPointReadConflict(t *testing.T) {
	st := seeded(t, hdr(100), "a", "b", "c")
	mustCommit(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("b", "new")}})
	tree2 := st.Tree()

	// Snapshot 1 read b, which 2 wrote: conflict naming b and 2.
	d, _ := apply(t, st, 3, &intention.Intention{Snapshot: 1, Reads: keys("a", "b", "c"), Ops: []intention.Op{put("x", "1")}})
	expectConflict(t, d, "b", 2)
	if dumpTree(t, st.Tree()) != dumpTree(t, tree2) {
		t.Fatal("an aborted intention changed the tree")
	}
	if _, ok := get(t, st.Tree(), "x"); ok {
		t.Fatal("an aborted write is visible")
	}
	// The first conflicting read is reported, in read order.
	mustCommit(t, st, 4, &intention.Intention{Snapshot: 3, Ops: []intention.Op{put("c", "new")}})
	d, _ = apply(t, st, 5, &intention.Intention{Snapshot: 1, Reads: keys("c", "b"), Ops: []intention.Op{put("x", "1")}})
	expectConflict(t, d, "c", 4)

	// A write at the snapshot itself, or before it, does not conflict.
	mustCommit(t, st, 6, &intention.Intention{Snapshot: 2, Reads: keys("a", "b"), Ops: []intention.Op{put("y", "1")}})
	mustCommit(t, st, 7, &intention.Intention{Snapshot: 4, Reads: keys("b", "c"), Ops: []intention.Op{put("z", "1")}})
	// Reading a key nobody wrote never conflicts.
	mustCommit(t, st, 8, &intention.Intention{Snapshot: 1, Reads: keys("nobody"), Ops: []intention.Op{put("w", "1")}})
	// Blind writes never conflict, whatever they overwrite.
	mustCommit(t, st, 9, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("b", "blind"), put("c", "blind")}})
	if v, _ := get(t, st.Tree(), "b"); v != "blind" {
		t.Fatalf("b = %q", v)
	}
	// Writes of aborted intentions do not conflict either: 3 and 5 wrote x
	// and aborted, so a reader of x at snapshot 1 commits.
	mustCommit(t, st, 10, &intention.Intention{Snapshot: 1, Reads: keys("x"), Ops: []intention.Op{put("v", "1")}})
}

func TestRangeConflict(t *testing.T) {
	// b, d, f at 1; c inserted at 2 (inside [b, d)), z at 3.
	st := seeded(t, hdr(100), "b", "d", "f")
	mustCommit(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("c", "new")}})
	mustCommit(t, st, 3, &intention.Intention{Snapshot: 2, Ops: []intention.Op{put("z", "new")}})
	cases := []struct {
		snap   uint64
		rng    intention.Range
		key    string // "" for no conflict
		wrPos  uint64
		reason string
	}{
		{1, rng("b", "d"), "c", 2, "phantom inside the range"},
		{1, rng("c", "d"), "c", 2, "lower bound is inclusive"},
		{1, rng("a", "c"), "", 0, "upper bound is exclusive"},
		{1, rng("d", "y"), "", 0, "range beside the insert"},
		{1, rng("ca", "cz"), "", 0, "range between keys"},
		{1, rng("", "c"), "", 0, "unbounded below, before the insert"},
		{1, rng("", "ca"), "c", 2, "unbounded below, over the insert"},
		{1, rng("c", ""), "c", 2, "unbounded above, first hit in key order"},
		{1, rng("d", ""), "z", 3, "unbounded above, beyond the insert"},
		{1, rng("", ""), "c", 2, "whole key space"},
		{2, rng("", ""), "z", 3, "whole key space, later snapshot"},
		{2, rng("a", "y"), "", 0, "insert at the snapshot does not conflict"},
		{3, rng("", ""), "", 0, "nothing after the snapshot"},
		{1, rng("d", "b"), "", 0, "inverted range is empty"},
		{1, intention.Range{Lo: nil, Hi: []byte{}}, "", 0, "empty upper bound is an empty range"},
		{1, intention.Range{Lo: []byte{}, Hi: nil}, "c", 2, "empty lower bound is unbounded"},
	}
	for i, c := range cases {
		t.Run(c.reason, func(t *testing.T) {
			// Each case runs on its own state copy at position 3.
			st := processor.NewState(st.Header(), st.Tree(), 3)
			pos := uint64(10 + i)
			d, _ := apply(t, st, pos, &intention.Intention{Snapshot: c.snap, Ranges: []intention.Range{c.rng}, Ops: []intention.Op{put("q", "1")}})
			if c.key == "" {
				if d.Outcome != processor.Committed {
					t.Fatalf("%v on %q at %d, want committed", d.Outcome, d.ConflictKey, d.ConflictPos)
				}
				return
			}
			expectConflict(t, d, c.key, c.wrPos)
		})
	}
	// Several ranges: the first conflicting range is reported; point reads
	// are checked before ranges.
	st2 := processor.NewState(st.Header(), st.Tree(), 3)
	d, _ := apply(t, st2, 20, &intention.Intention{Snapshot: 1, Reads: keys("z"), Ranges: []intention.Range{rng("y", ""), rng("a", "d")}, Ops: []intention.Op{put("q", "1")}})
	expectConflict(t, d, "z", 3)
	d, _ = apply(t, st2, 21, &intention.Intention{Snapshot: 1, Reads: keys("b"), Ranges: []intention.Range{rng("e", "g"), rng("a", "d"), rng("y", "")}, Ops: []intention.Op{put("q", "1")}})
	expectConflict(t, d, "c", 2)
}

// TestRangeConflictLargeTree checks range pruning on a tree big enough to
// have many levels: a single recent write among thousands of old ones.
func TestRangeConflictLargeTree(t *testing.T) {
	var ks []string
	for i := range 3000 {
		ks = append(ks, fmt.Sprintf("key%05d", 2*i))
	}
	st := seeded(t, hdr(1000), ks...)
	mustCommit(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("key01235", "new")}})
	for _, c := range []struct {
		lo, hi string
		hit    bool
	}{
		{"key01234", "key01236", true},
		{"key01235", "key01235\x00", true},
		{"key01000", "key01235", false},
		{"key01236", "key02000", false},
		{"", "key01235", false},
		{"key01236", "", false},
		{"", "", true},
	} {
		st := processor.NewState(st.Header(), st.Tree(), 2)
		d, _ := apply(t, st, 3, &intention.Intention{Snapshot: 1, Ranges: []intention.Range{rng(c.lo, c.hi)}, Ops: []intention.Op{put("q", "1")}})
		if c.hit {
			expectConflict(t, d, "key01235", 2)
		} else if d.Outcome != processor.Committed {
			t.Fatalf("[%q,%q): %v on %q", c.lo, c.hi, d.Outcome, d.ConflictKey)
		}
	}
}

func TestDeleteLeavesConflictingTombstone(t *testing.T) {
	st := seeded(t, hdr(100), "a", "k", "z")
	mustCommit(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{del("k")}})
	n, err := func() (*cowtree.Node, error) { tr := st.Tree(); return tr.Lookup([]byte("k")) }()
	if err != nil {
		t.Fatal(err)
	}
	if n == nil || !n.Tombstone() || n.Pos() != 2 || n.Value() != nil {
		t.Fatalf("after delete: node %v", n)
	}
	if _, ok := get(t, st.Tree(), "k"); ok {
		t.Fatal("deleted key is visible")
	}
	if c, _ := func() (int, error) { tr := st.Tree(); return tr.Count() }(); c != 2 {
		t.Fatalf("count %d, want 2", c)
	}
	// A point read and a range over the deleted key conflict with the delete.
	d, _ := apply(t, st, 3, &intention.Intention{Snapshot: 1, Reads: keys("k"), Ops: []intention.Op{put("x", "1")}})
	expectConflict(t, d, "k", 2)
	d, _ = apply(t, st, 4, &intention.Intention{Snapshot: 1, Ranges: []intention.Range{rng("j", "l")}, Ops: []intention.Op{put("x", "1")}})
	expectConflict(t, d, "k", 2)
	// A delete of a key that was never there leaves a tombstone too.
	mustCommit(t, st, 5, &intention.Intention{Snapshot: 4, Ops: []intention.Op{del("m")}})
	d, _ = apply(t, st, 6, &intention.Intention{Snapshot: 4, Ranges: []intention.Range{rng("l", "n")}, Ops: []intention.Op{put("x", "1")}})
	expectConflict(t, d, "m", 5)
	// A put after a delete revives the key at the new position.
	mustCommit(t, st, 7, &intention.Intention{Snapshot: 6, Ops: []intention.Op{put("k", "again")}})
	if v, ok := get(t, st.Tree(), "k"); !ok || v != "again" {
		t.Fatalf("k = %q %v", v, ok)
	}
	d, _ = apply(t, st, 8, &intention.Intention{Snapshot: 6, Reads: keys("k"), Ops: []intention.Op{put("x", "1")}})
	expectConflict(t, d, "k", 7)
}

func TestTooOld(t *testing.T) {
	const w = 10
	st := seeded(t, hdr(w), "a")
	for p := uint64(2); p <= 30; p++ {
		if err := st.Skip(p); err != nil {
			t.Fatal(err)
		}
	}
	// 31 - 20 = 11 > window: too old, even for a blind write.
	d, _ := apply(t, st, 31, &intention.Intention{Snapshot: 20, Ops: []intention.Op{put("b", "1")}})
	if d.Outcome != processor.TooOld {
		t.Fatalf("31-20 > %d: %v, want too old", w, d.Outcome)
	}
	if _, ok := get(t, st.Tree(), "b"); ok {
		t.Fatal("a too-old write is visible")
	}
	// 32 - 22 = 10 = window: still decided by conflicts.
	mustCommit(t, st, 32, &intention.Intention{Snapshot: 22, Reads: keys("a"), Ops: []intention.Op{put("b", "1")}})
	d, _ = apply(t, st, 33, &intention.Intention{Snapshot: 23, Reads: keys("b"), Ops: []intention.Op{put("c", "1")}})
	expectConflict(t, d, "b", 32)
	// Too old is decided before the header's limits.
	d, _ = apply(t, st, 50, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put(strings.Repeat("k", 100), "1")}})
	if d.Outcome != processor.TooOld {
		t.Fatalf("too old and invalid: %v, want too old", d.Outcome)
	}
	for o, want := range map[processor.Outcome]string{
		processor.Committed: "committed", processor.Conflict: "conflict", processor.TooOld: "too old",
		processor.Invalid: "invalid", 0: "outcome(0)", 9: "outcome(9)",
	} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", uint8(o), got, want)
		}
	}
}

func TestTombstonesDroppedAfterWindow(t *testing.T) {
	const w = 5
	st := seeded(t, hdr(w), "a", "k", "z")
	mustCommit(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{del("k")}})
	lookup := func(tr cowtree.Tree, k string) *cowtree.Node {
		t.Helper()
		n, err := tr.Lookup([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	trees := map[uint64]cowtree.Tree{2: st.Tree()}
	// Positions 3..7 commit other writes. Commit p drops tombstones older
	// than p-w, so the tombstone at 2 survives up to 7 (7-w = 2).
	for p := uint64(3); p <= 7; p++ {
		mustCommit(t, st, p, &intention.Intention{Snapshot: p - 1, Ops: []intention.Op{put("a", fmt.Sprint(p))}})
		trees[p] = st.Tree()
		if n := lookup(st.Tree(), "k"); n == nil || !n.Tombstone() || n.Pos() != 2 {
			t.Fatalf("after %d: tombstone %v, want it kept", p, n)
		}
	}
	// The latest intention that can still conflict with the delete has
	// snapshot 1 and position 1+w = 6, and it sees the tombstone, by point
	// read and by range.
	probe := processor.NewState(st.Header(), trees[5], 5)
	d, _ := apply(t, probe, 6, &intention.Intention{Snapshot: 1, Reads: keys("k"), Ops: []intention.Op{put("q", "1")}})
	expectConflict(t, d, "k", 2)
	d, _ = apply(t, probe, 7, &intention.Intention{Snapshot: 2, Ranges: []intention.Range{rng("j", "l")}, Ops: []intention.Op{put("q", "1")}})
	if d.Outcome != processor.Committed { // snapshot 2 includes the delete
		t.Fatalf("snapshot 2 after a delete at 2: %v", d.Outcome)
	}
	probe = processor.NewState(st.Header(), trees[6], 6)
	d, _ = apply(t, probe, 7, &intention.Intention{Snapshot: 1, Ranges: []intention.Range{rng("j", "l")}, Ops: []intention.Op{put("q", "1")}})
	if d.Outcome != processor.TooOld { // one past the window
		t.Fatalf("snapshot 1 at 7: %v, want too old", d.Outcome)
	}

	// An abort or a skip at 8 does not drop anything: only commits do.
	if err := st.Skip(8); err != nil {
		t.Fatal(err)
	}
	d, _ = apply(t, st, 9, &intention.Intention{Snapshot: 9, Ops: []intention.Op{put("a", "x")}})
	if d.Outcome != processor.Invalid {
		t.Fatalf("snapshot 9 at 9: %v", d.Outcome)
	}
	if n := lookup(st.Tree(), "k"); n == nil || !n.Tombstone() {
		t.Fatal("a skip or an abort dropped the tombstone")
	}
	// The commit at 10 drops it (10-w = 5 > 2), and the new version's
	// summaries say so; version 7 still has it.
	delta := mustCommit(t, st, 10, &intention.Intention{Snapshot: 9, Ops: []intention.Op{put("b", "1")}})
	if n := lookup(st.Tree(), "k"); n != nil {
		t.Fatalf("tombstone still there after the window: %v", n)
	}
	root, err := delta.Tree.RootNode()
	if err != nil {
		t.Fatal(err)
	}
	if root.MinTomb() != cowtree.NoTombstone {
		t.Fatalf("root MinTomb %d after the drop", root.MinTomb())
	}
	if got := dumpTree(t, st.Tree()); got != "a@7=7 b@10=1 z@1=v-z " {
		t.Fatalf("tree after the drop: %q", got)
	}
	if n := lookup(trees[7], "k"); n == nil || !n.Tombstone() {
		t.Fatal("the drop changed an older version")
	}
	// A newer tombstone stays until its own window passes: deleted at 11,
	// kept through 16, dropped by the commit at 17.
	mustCommit(t, st, 11, &intention.Intention{Snapshot: 10, Ops: []intention.Op{del("z")}})
	for p := uint64(12); p <= 16; p++ {
		mustCommit(t, st, p, &intention.Intention{Snapshot: p - 1, Ops: []intention.Op{put("a", "x")}})
		if n := lookup(st.Tree(), "z"); n == nil || !n.Tombstone() {
			t.Fatalf("tombstone at 11 dropped by %d", p)
		}
	}
	mustCommit(t, st, 17, &intention.Intention{Snapshot: 16, Ops: []intention.Op{put("a", "x")}})
	if n := lookup(st.Tree(), "z"); n != nil {
		t.Fatal("tombstone at 11 kept at 17")
	}
	// Two states replaying the same positions drop the same tombstones.
	again := seeded(t, hdr(w), "a", "k", "z")
	mustCommit(t, again, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{del("k")}})
	for p := uint64(3); p <= 7; p++ {
		mustCommit(t, again, p, &intention.Intention{Snapshot: p - 1, Ops: []intention.Op{put("a", fmt.Sprint(p))}})
	}
	again.Skip(9)
	d2 := mustCommit(t, again, 10, &intention.Intention{Snapshot: 9, Ops: []intention.Op{put("b", "1")}})
	if !bytes.Equal(canonical(delta), canonical(d2)) {
		t.Fatal("the delta that dropped the tombstone differs between replays")
	}
}

func TestInvalid(t *testing.T) {
	h := hdr(100) // keys up to 32 bytes, values up to 4096
	cases := []struct {
		name   string
		in     *intention.Intention
		reason string
	}{
		{"snapshot at the position", &intention.Intention{Snapshot: 5, Ops: []intention.Op{put("a", "1")}}, "snapshot 5"},
		{"snapshot after the position", &intention.Intention{Snapshot: 9, Ops: []intention.Op{put("a", "1")}}, "snapshot 9"},
		{"key over MaxKeySize", &intention.Intention{Snapshot: 2, Ops: []intention.Op{put("a", "1"), put(strings.Repeat("k", 33), "1")}}, "key of 33 bytes"},
		{"value over MaxValueSize", &intention.Intention{Snapshot: 2, Ops: []intention.Op{put("a", strings.Repeat("v", 4097))}}, "value of 4097 bytes"},
		{"no ops", &intention.Intention{Snapshot: 2, Reads: keys("a")}, "no ops"},
		{"empty key", &intention.Intention{Snapshot: 2, Ops: []intention.Op{put("", "1")}}, "empty key"},
		{"unknown op", &intention.Intention{Snapshot: 2, Ops: []intention.Op{{Kind: 9, Key: []byte("a")}}}, "unknown kind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := seeded(t, h, "a")
			if err := st.Skip(4); err != nil {
				t.Fatal(err)
			}
			before := dumpTree(t, st.Tree())
			d, _ := apply(t, st, 5, c.in)
			if d.Outcome != processor.Invalid || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("%v %q, want invalid saying %q", d.Outcome, d.Reason, c.reason)
			}
			if got := dumpTree(t, st.Tree()); got != before {
				t.Fatalf("an invalid intention changed the tree: %q", got)
			}
		})
	}
	// Exactly at the limits is valid.
	st := seeded(t, h, "a")
	mustCommit(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put(strings.Repeat("k", 32), strings.Repeat("v", 4096))}})
}

func TestReplayTwiceIsAnError(t *testing.T) {
	st := seeded(t, hdr(100), "a")
	mustCommit(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("b", "1")}})
	before := dumpTree(t, st.Tree())
	for _, pos := range []uint64{0, 1, 2} {
		if _, delta, err := st.Apply(pos, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("c", "1")}}); err == nil || delta != nil {
			t.Fatalf("Apply(%d) at state 2: err %v", pos, err)
		}
		if err := st.Skip(pos); err == nil {
			t.Fatalf("Skip(%d) at state 2 succeeded", pos)
		}
	}
	if st.Pos() != 2 || dumpTree(t, st.Tree()) != before {
		t.Fatalf("a refused replay changed the state: pos %d", st.Pos())
	}
	if err := st.Skip(3); err != nil || st.Pos() != 3 {
		t.Fatalf("Skip(3): %v, pos %d", err, st.Pos())
	}
	if _, _, err := st.Apply(3, &intention.Intention{Snapshot: 2, Ops: []intention.Op{put("c", "1")}}); err == nil {
		t.Fatal("Apply after Skip of the same position succeeded")
	}
	// Positions may jump (the runner skips nothing, but a state may resume
	// anywhere): 10 after 3 is fine.
	mustCommit(t, st, 10, &intention.Intention{Snapshot: 3, Ops: []intention.Op{put("c", "1")}})
}

// failLoader fails every load.
type failLoader struct{}

var errLoad = errors.New("test: load failed")

func (failLoader) LoadNode(cowtree.Addr) (*cowtree.Node, error) { return nil, errLoad }

func TestLoadErrorLeavesStateUnchanged(t *testing.T) {
	tree := cowtree.FromRoot(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: 3, Off: 0}, failLoader{})
	st := processor.NewState(hdr(100), tree, 4)
	for _, in := range []*intention.Intention{
		{Snapshot: 4, Reads: keys("a"), Ops: []intention.Op{put("a", "1")}},
		{Snapshot: 4, Ranges: []intention.Range{rng("", "")}, Ops: []intention.Op{put("a", "1")}},
		{Snapshot: 4, Ops: []intention.Op{put("a", "1")}},
	} {
		_, delta, err := st.Apply(5, in)
		if !errors.Is(err, errLoad) || delta != nil {
			t.Fatalf("Apply with a failing loader: %v", err)
		}
		if st.Pos() != 4 {
			t.Fatalf("state moved to %d after a failed apply", st.Pos())
		}
	}
}

// --- Randomized model -------------------------------------------------------

type mEntry struct {
	pos  uint64
	tomb bool
	val  string
}

// model is the map-based specification of the processor.
type model struct {
	w       uint64
	entries map[string]mEntry
}

func (m *model) decide(pos uint64, in *intention.Intention, h entry.Header) (processor.Outcome, string, uint64) {
	switch {
	case in.Snapshot >= pos:
		return processor.Invalid, "", 0
	case pos-in.Snapshot > m.w:
		return processor.TooOld, "", 0
	case in.Validate(int(h.MaxKeySize), int(h.MaxValueSize)) != nil:
		return processor.Invalid, "", 0
	}
	for _, k := range in.Reads {
		if e, ok := m.entries[string(k)]; ok && e.pos > in.Snapshot {
			return processor.Conflict, string(k), e.pos
		}
	}
	sorted := slices.Sorted(func(yield func(string) bool) {
		for k := range m.entries {
			if !yield(k) {
				return
			}
		}
	})
	for _, r := range in.Ranges {
		for _, k := range sorted {
			if e := m.entries[k]; r.Contains([]byte(k)) && e.pos > in.Snapshot {
				return processor.Conflict, k, e.pos
			}
		}
	}
	return processor.Committed, "", 0
}

func (m *model) commit(pos uint64, in *intention.Intention) {
	for _, op := range in.Ops {
		if op.Kind == intention.OpPut {
			m.entries[string(op.Key)] = mEntry{pos: pos, val: string(op.Value)}
		} else {
			m.entries[string(op.Key)] = mEntry{pos: pos, tomb: true}
		}
	}
	if pos > m.w {
		for k, e := range m.entries {
			if e.tomb && e.pos < pos-m.w {
				delete(m.entries, k)
			}
		}
	}
}

func (m *model) dump() string {
	var b strings.Builder
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m.entries {
			if !yield(k) {
				return
			}
		}
	}) {
		e := m.entries[k]
		if e.tomb {
			fmt.Fprintf(&b, "%s@%d=<tomb> ", k, e.pos)
		} else {
			fmt.Fprintf(&b, "%s@%d=%s ", k, e.pos, e.val)
		}
	}
	return b.String()
}

// randomKey draws from a small key space, with keys that share long
// prefixes (compared beyond the first 8 bytes) and short ones.
func randomKey(r *rand.Rand) []byte {
	if r.IntN(3) == 0 {
		return fmt.Appendf(nil, "sharedprefix/%02d", r.IntN(12))
	}
	return fmt.Appendf(nil, "k%02d", r.IntN(30))
}

// randomIntention makes the intention at pos: mostly valid snapshots within
// the window, some too old or invalid.
func randomIntention(r *rand.Rand, pos, w uint64) *intention.Intention {
	in := &intention.Intention{Token: r.Uint64()}
	switch x := r.IntN(40); {
	case x == 0:
		in.Snapshot = pos + uint64(r.IntN(2)) // invalid
	case x == 1 && pos > w+3:
		in.Snapshot = pos - w - 1 - uint64(r.IntN(3)) // too old
	default:
		back := 1 + uint64(r.IntN(int(w)))
		if back > pos {
			back = pos
		}
		in.Snapshot = pos - back
	}
	for range r.IntN(3) {
		in.Reads = append(in.Reads, randomKey(r))
	}
	for range r.IntN(2) {
		var rg intention.Range
		if r.IntN(4) != 0 {
			rg.Lo = randomKey(r)
		}
		if r.IntN(4) != 0 {
			rg.Hi = randomKey(r)
		}
		in.Ranges = append(in.Ranges, rg)
	}
	for range 1 + r.IntN(4) {
		k := randomKey(r)
		if r.IntN(3) == 0 {
			in.Ops = append(in.Ops, intention.Op{Kind: intention.OpDelete, Key: k})
		} else {
			in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: k, Value: fmt.Appendf(nil, "v%d", pos)})
		}
	}
	if r.IntN(60) == 0 {
		in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: bytes.Repeat([]byte("x"), 40)}) // over MaxKeySize
	}
	return in
}

// nodeSet is every node of tr (all in memory).
func nodeSet(tr cowtree.Tree) map[*cowtree.Node]bool {
	out := map[*cowtree.Node]bool{}
	var walk func(n *cowtree.Node)
	walk = func(n *cowtree.Node) {
		if n != nil {
			out[n] = true
			walk(n.Left().Node())
			walk(n.Right().Node())
		}
	}
	walk(tr.Root().Node())
	return out
}

// checkNodeSets checks a delta's node lists against the versions: Nodes are
// exactly the new version's nodes that the previous one lacks, and Replaced
// exactly the previous version's nodes that the new one lacks.
func checkNodeSets(t *testing.T, pos uint64, prev cowtree.Tree, d *processor.Delta) {
	t.Helper()
	before, after := nodeSet(prev), nodeSet(d.Tree)
	fresh := map[*cowtree.Node]bool{}
	for _, n := range d.Nodes {
		fresh[n] = true
		if before[n] || !after[n] || n.Delta() != pos {
			t.Fatalf("pos %d: node %q listed as new (old %v, in new version %v)", pos, n.Key(), before[n], after[n])
		}
	}
	gone := map[*cowtree.Node]bool{}
	for _, n := range d.Replaced {
		gone[n] = true
		if !before[n] || after[n] {
			t.Fatalf("pos %d: node %q listed as replaced (in old version %v, in new %v)", pos, n.Key(), before[n], after[n])
		}
	}
	for n := range after {
		if !before[n] && !fresh[n] {
			t.Fatalf("pos %d: new node %q not listed", pos, n.Key())
		}
	}
	for n := range before {
		if !after[n] && !gone[n] {
			t.Fatalf("pos %d: node %q left the version but is not listed as replaced", pos, n.Key())
		}
	}
}

// TestModelRandom checks decisions, conflict keys and the resulting tree,
// tombstones included, against the map model over random sequences.
func TestModelRandom(t *testing.T) {
	seed := testutil.Seed(t, 20250101)
	for run := range 3 {
		r := rand.New(rand.NewPCG(seed, uint64(run)))
		w := uint64(3 + r.IntN(30))
		h := hdr(w)
		st := processor.NewState(h, cowtree.New(nil), 0)
		m := &model{w: w, entries: map[string]mEntry{}}
		counts := map[processor.Outcome]int{}
		for pos := uint64(1); pos <= 1000; pos++ {
			if r.IntN(10) == 0 {
				if err := st.Skip(pos); err != nil {
					t.Fatal(err)
				}
				continue
			}
			in := randomIntention(r, pos, w)
			prev := st.Tree()
			d, delta := apply(t, st, pos, in)
			wantO, wantK, wantP := m.decide(pos, in, h)
			if d.Outcome != wantO || string(d.ConflictKey) != wantK || d.ConflictPos != wantP {
				t.Fatalf("run %d window %d pos %d: got %v %q %d, model %v %q %d\nintention %+v\ntree %s", run, w, pos,
					d.Outcome, d.ConflictKey, d.ConflictPos, wantO, wantK, wantP, in, m.dump())
			}
			counts[d.Outcome]++
			if d.Outcome == processor.Committed {
				m.commit(pos, in)
				if root, err := delta.Tree.RootNode(); err != nil || (root == nil) != (len(delta.Nodes) == 0) ||
					(root != nil && delta.Nodes[len(delta.Nodes)-1] != root) {
					t.Fatalf("pos %d: root %v is not the last of %d nodes (%v)", pos, root, len(delta.Nodes), err)
				}
				checkNodeSets(t, pos, prev, delta)
			}
			if got, want := dumpTree(t, st.Tree()), m.dump(); got != want {
				t.Fatalf("run %d pos %d: tree\n%s\nmodel\n%s", run, pos, got, want)
			}
		}
		t.Logf("run %d window %d: %v", run, w, counts)
		for _, o := range []processor.Outcome{processor.Committed, processor.Conflict, processor.TooOld, processor.Invalid} {
			if counts[o] == 0 {
				t.Errorf("run %d: no %v decisions; the model test is too weak", run, o)
			}
		}
	}
}

// --- Determinism --------------------------------------------------------------

// canonical is the canonical afterimage entry of a delta.
func canonical(d *processor.Delta) []byte {
	ai, _ := flusher.Serialize(d, d.Pos, nil)
	return entry.AppendAfterimage(nil, ai)
}

// step is one position of a replayed sequence: an intention or a skip.
type step struct {
	pos uint64
	in  *intention.Intention // nil: skip
}

func randomSteps(seed uint64, n int, w uint64) []step {
	r := rand.New(rand.NewPCG(seed, 9))
	var out []step
	for pos := uint64(1); pos <= uint64(n); pos++ {
		if r.IntN(8) == 0 {
			out = append(out, step{pos: pos})
			continue
		}
		out = append(out, step{pos, randomIntention(r, pos, w)})
	}
	return out
}

type result struct {
	decisions []processor.Decision
	deltas    map[uint64][]byte
}

func replay(t *testing.T, st *processor.State, steps []step) result {
	t.Helper()
	res := result{deltas: map[uint64][]byte{}}
	for _, s := range steps {
		if s.in == nil {
			if err := st.Skip(s.pos); err != nil {
				t.Fatal(err)
			}
			continue
		}
		d, delta, err := st.Apply(s.pos, s.in)
		if err != nil {
			t.Fatal(err)
		}
		res.decisions = append(res.decisions, d)
		if delta != nil {
			res.deltas[s.pos] = canonical(delta)
		}
	}
	return res
}

func compareResults(t *testing.T, a, b result) {
	t.Helper()
	if len(a.decisions) != len(b.decisions) || len(a.deltas) != len(b.deltas) {
		t.Fatalf("%d/%d decisions, %d/%d deltas", len(a.decisions), len(b.decisions), len(a.deltas), len(b.deltas))
	}
	for i := range a.decisions {
		da, db := a.decisions[i], b.decisions[i]
		if da.Pos != db.Pos || da.Outcome != db.Outcome || !bytes.Equal(da.ConflictKey, db.ConflictKey) || da.ConflictPos != db.ConflictPos || da.Reason != db.Reason {
			t.Fatalf("decision %d differs: %+v vs %+v", i, da, db)
		}
	}
	for pos, x := range a.deltas {
		if !bytes.Equal(x, b.deltas[pos]) {
			t.Fatalf("delta %d differs:\n%x\n%x", pos, x, b.deltas[pos])
		}
	}
}

// TestDeterministicDeltas: two states replaying one sequence make the same
// decisions and byte-identical canonical afterimages.
func TestDeterministicDeltas(t *testing.T) {
	seed := testutil.Seed(t, 4242)
	const w = 12
	steps := randomSteps(seed, 1200, w)
	a := replay(t, processor.NewState(hdr(w), cowtree.New(nil), 0), steps)
	b := replay(t, processor.NewState(hdr(w), cowtree.New(nil), 0), steps)
	if len(a.deltas) < 300 {
		t.Fatalf("only %d commits", len(a.deltas))
	}
	compareResults(t, a, b)
	// A different header changes decisions: the comparison can fail.
	c := replay(t, processor.NewState(hdr(w+5), cowtree.New(nil), 0), steps)
	same := len(a.deltas) == len(c.deltas)
	if same {
		for pos, x := range a.deltas {
			if !bytes.Equal(x, c.deltas[pos]) {
				same = false
				break
			}
		}
	}
	if same {
		t.Fatal("a different conflict window made identical deltas; the comparison is too weak")
	}
}

// logLoader serves nodes from canonical afterimages, as the flusher's pager
// would from the log: every node is loaded, none is shared with the state
// that wrote the afterimages.
type logLoader struct {
	t     *testing.T
	ais   map[uint64][]byte
	ins   map[uint64]*intention.Intention // for values left in their intention
	loads int
}

func (l *logLoader) LoadNode(a cowtree.Addr) (*cowtree.Node, error) {
	l.loads++
	if a.Kind != cowtree.AddrIntention {
		return nil, fmt.Errorf("unexpected address %v", a)
	}
	data, ok := l.ais[a.Pos]
	if !ok {
		return nil, fmt.Errorf("no afterimage for %d", a.Pos)
	}
	ai, err := entry.DecodeAfterimageEntry(a.Pos, data)
	if err != nil {
		return nil, err
	}
	nd := ai.Nodes[a.Off]
	addr := func(p afterimage.Ptr) cowtree.Addr {
		switch p.Kind {
		case afterimage.PtrSelf:
			return cowtree.Addr{Kind: cowtree.AddrIntention, Pos: a.Pos, Off: p.Off}
		case afterimage.PtrIntention:
			return cowtree.Addr{Kind: cowtree.AddrIntention, Pos: p.Pos, Off: p.Off}
		case afterimage.PtrNil:
			return cowtree.Addr{}
		}
		l.t.Errorf("canonical afterimage with a %v pointer", p)
		return cowtree.Addr{}
	}
	if nd.ValueInIntention {
		in, ok := l.ins[nd.Pos]
		if !ok {
			return nil, fmt.Errorf("node %q: no intention at %d", nd.Key, nd.Pos)
		}
		found := false
		for _, op := range in.Ops {
			if op.Kind == intention.OpPut && bytes.Equal(op.Key, nd.Key) {
				nd.Value, found = op.Value, true
			}
		}
		if !found {
			return nil, fmt.Errorf("node %q: intention %d does not put it", nd.Key, nd.Pos)
		}
	}
	return cowtree.NewLoaded(a, cowtree.NodeFields{
		Key: nd.Key, Value: nd.Value, Pos: nd.Pos, Tombstone: nd.Tombstone,
		MaxPos: nd.MaxPos, MinTomb: nd.MinTomb, Height: int(nd.Height),
		Left: addr(nd.Left), Right: addr(nd.Right), LeftCount: nd.LeftCount, RightCount: nd.RightCount,
	}), nil
}

// TestDeterministicFromLoadedTree: a state that resumes from a tree loaded
// lazily from afterimages (summaries unknown until loaded) makes the same
// decisions and bytes as the state that kept everything in memory.
func TestDeterministicFromLoadedTree(t *testing.T) {
	seed := testutil.Seed(t, 777)
	const w = 15
	steps := randomSteps(seed, 900, w)
	full := replay(t, processor.NewState(hdr(w), cowtree.New(nil), 0), steps)
	for _, cut := range []int{50, 300, 640} {
		// Resume after the last commit at or before cut.
		var at uint64
		for _, s := range steps[:cut] {
			if _, ok := full.deltas[s.pos]; ok {
				at = s.pos
			}
		}
		ld := &logLoader{t: t, ais: full.deltas, ins: map[uint64]*intention.Intention{}}
		for _, s := range steps {
			if s.in != nil {
				ld.ins[s.pos] = s.in
			}
		}
		ai, err := entry.DecodeAfterimageEntry(0, full.deltas[at])
		if err != nil {
			t.Fatal(err)
		}
		var tree cowtree.Tree
		if len(ai.Nodes) > 0 {
			tree = cowtree.FromRoot(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: at, Off: uint32(len(ai.Nodes) - 1)}, ld)
		} else {
			tree = cowtree.New(ld)
		}
		var rest []step
		for _, s := range steps {
			if s.pos > at {
				rest = append(rest, s)
			}
		}
		got := replay(t, processor.NewState(hdr(w), tree, at), rest)
		want := result{deltas: map[uint64][]byte{}}
		for _, d := range full.decisions {
			if d.Pos > at {
				want.decisions = append(want.decisions, d)
			}
		}
		for pos, x := range full.deltas {
			if pos > at {
				want.deltas[pos] = x
			}
		}
		compareResults(t, want, got)
		if ld.loads == 0 {
			t.Fatal("nothing was loaded")
		}
		t.Logf("resumed after %d: %d loads", at, ld.loads)
	}
}
