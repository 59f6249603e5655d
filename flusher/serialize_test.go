package flusher

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/flusher/nodecache"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/processor"
)

// sevenKeys returns a state after position 1, which wrote a..g: a perfect
// tree rooted at d, numbered in post-order a0 c1 b2 e3 g4 f5 d6.
func sevenKeys(t *testing.T, ld cowtree.Loader) (*processor.State, *processor.Delta) {
	t.Helper()
	st := processor.NewState(testHeader, cowtree.New(ld), 0)
	in := &intention.Intention{}
	for _, k := range "abcdefg" {
		in.Ops = append(in.Ops, putOp(string(k), "v"+string(k)))
	}
	d := mustApply(t, st, 1, in)
	var got []string
	for _, n := range d.Nodes {
		got = append(got, string(n.Key()))
	}
	if strings.Join(got, "") != "acbegfd" {
		t.Fatalf("post-order %v", got)
	}
	return st, d
}

// checkSerialized checks every field of ai against the delta, and each
// pointer against an independent derivation: a child made by the same delta
// is a self pointer to its offset; a child with a physical address keeps it;
// any other is physical when phys knows its intention, else an intention
// pointer.
func checkSerialized(t *testing.T, d *processor.Delta, base uint64, phys Physical, ai *afterimage.Afterimage, counts afterimage.PointerCounts) {
	t.Helper()
	if ai.Intention != d.Pos || ai.Base != base || len(ai.Nodes) != len(d.Nodes) {
		t.Fatalf("afterimage %d base %d with %d nodes, delta %d with %d", ai.Intention, ai.Base, len(ai.Nodes), d.Pos, len(d.Nodes))
	}
	want := func(r *cowtree.Ref) afterimage.Ptr {
		if r.IsNil() {
			return afterimage.Ptr{}
		}
		if c := r.Node(); c != nil && c.Delta() == d.Pos {
			return afterimage.SelfPtr(c.Off())
		}
		a := r.Addr()
		if a.Kind == cowtree.AddrAfterimage {
			return afterimage.AfterimagePtr(a.Pos, a.Off)
		}
		if phys != nil {
			if at, ok := phys(a.Pos); ok {
				return afterimage.AfterimagePtr(at, a.Off)
			}
		}
		return afterimage.IntentionPtr(a.Pos, a.Off)
	}
	for i, n := range d.Nodes {
		nd := ai.Nodes[i]
		v, vii := n.Value(), false
		if !n.Tombstone() && (len(v) > InlineValueMax || (n.Pos() != d.Pos && n.Height() > InlineHeight)) {
			v, vii = nil, true
		}
		if !bytes.Equal(nd.Key, n.Key()) || !bytes.Equal(nd.Value, v) || (nd.Value == nil) != (v == nil) || nd.ValueInIntention != vii ||
			nd.Pos != n.Pos() || nd.Tombstone != n.Tombstone() || nd.MaxPos != n.MaxPos() || nd.MinTomb != n.MinTomb() || int(nd.Height) != n.Height() {
			t.Fatalf("node %d: %v, delta node %q pos %d", i, &nd, n.Key(), n.Pos())
		}
		if l, r := want(n.Left()), want(n.Right()); nd.Left != l || nd.Right != r {
			t.Fatalf("node %d (%q): pointers %v %v, want %v %v", i, nd.Key, nd.Left, nd.Right, l, r)
		}
	}
	if counts != ai.PointerCounts() || counts.Total() != 2*len(ai.Nodes) {
		t.Fatalf("counts %+v, afterimage has %+v", counts, ai.PointerCounts())
	}
	if err := ai.Validate(); err != nil {
		t.Fatal(err)
	}
	// The flusher's in-place encoding gives the same bytes and counts.
	if data, c := AppendEntry([]byte("prefix"), d, base, phys); string(data[6:]) != string(entry.AppendAfterimage(nil, ai)) || c != counts || string(data[:6]) != "prefix" {
		t.Fatalf("AppendEntry differs from the encoded record (counts %+v, want %+v)", c, counts)
	}
	// The record survives its encoding.
	got, err := entry.DecodeAfterimageEntry(9, entry.AppendAfterimage(nil, ai))
	if err != nil {
		t.Fatal(err)
	}
	if len(ai.Nodes) == 0 {
		ai.Nodes = nil
		got.Nodes = nil
	}
	if !reflect.DeepEqual(got, ai) {
		t.Fatalf("round trip:\n%+v\n%+v", got, ai)
	}
}

func TestSerializeSelfPointers(t *testing.T) {
	_, d := sevenKeys(t, nil)
	ai, counts := Serialize(d, 1, nil)
	checkSerialized(t, d, 1, nil, ai, counts)
	want := map[string][2]afterimage.Ptr{
		"b": {afterimage.SelfPtr(0), afterimage.SelfPtr(1)},
		"f": {afterimage.SelfPtr(3), afterimage.SelfPtr(4)},
		"d": {afterimage.SelfPtr(2), afterimage.SelfPtr(5)},
	}
	for _, nd := range ai.Nodes {
		if w, ok := want[string(nd.Key)]; ok && (nd.Left != w[0] || nd.Right != w[1]) {
			t.Fatalf("%q: %v %v, want %v", nd.Key, nd.Left, nd.Right, w)
		}
	}
	if counts != (afterimage.PointerCounts{Self: 6, Nil: 8}) {
		t.Fatalf("counts %+v", counts)
	}
	// Base is written as given.
	if ai, _ := Serialize(d, 0, nil); ai.Base != 0 {
		t.Fatalf("base %d", ai.Base)
	}
}

func TestSerializeCrossDeltaPointers(t *testing.T) {
	st, _ := sevenKeys(t, nil)
	// Adding h copies d, f, g: new nodes h0 g1 f2 d3; e (1,3) and b (1,2)
	// stay in delta 1.
	d2 := mustApply(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{putOp("h", "vh")}})
	keys := ""
	for _, n := range d2.Nodes {
		keys += string(n.Key())
	}
	if keys != "hgfd" {
		t.Fatalf("delta 2 nodes %q", keys)
	}
	byKey := func(ai *afterimage.Afterimage, k string) afterimage.Node {
		for _, nd := range ai.Nodes {
			if string(nd.Key) == k {
				return nd
			}
		}
		t.Fatalf("no %q", k)
		return afterimage.Node{}
	}

	t.Run("intention pointers without phys", func(t *testing.T) {
		ai, counts := Serialize(d2, 2, nil)
		checkSerialized(t, d2, 2, nil, ai, counts)
		if f := byKey(ai, "f"); f.Left != afterimage.IntentionPtr(1, 3) || f.Right != afterimage.SelfPtr(1) {
			t.Fatalf("f: %v %v", f.Left, f.Right)
		}
		if d := byKey(ai, "d"); d.Left != afterimage.IntentionPtr(1, 2) || d.Right != afterimage.SelfPtr(2) {
			t.Fatalf("d: %v %v", d.Left, d.Right)
		}
		if counts != (afterimage.PointerCounts{Self: 3, Intention: 2, Nil: 3}) {
			t.Fatalf("counts %+v", counts)
		}
	})
	t.Run("physical when phys knows", func(t *testing.T) {
		phys := func(in uint64) (uint64, bool) {
			if in == 1 {
				return 100, true
			}
			return 0, false
		}
		ai, counts := Serialize(d2, 2, phys)
		checkSerialized(t, d2, 2, phys, ai, counts)
		if f := byKey(ai, "f"); f.Left != afterimage.AfterimagePtr(100, 3) {
			t.Fatalf("f: %v", f.Left)
		}
		if d := byKey(ai, "d"); d.Left != afterimage.AfterimagePtr(100, 2) {
			t.Fatalf("d: %v", d.Left)
		}
		if counts != (afterimage.PointerCounts{Self: 3, Afterimage: 2, Nil: 3}) {
			t.Fatalf("counts %+v", counts)
		}
	})
	t.Run("intention pointers when phys does not know", func(t *testing.T) {
		phys := func(uint64) (uint64, bool) { return 0, false }
		ai, counts := Serialize(d2, 1, phys)
		checkSerialized(t, d2, 1, phys, ai, counts)
		if counts.Intention != 2 || counts.Afterimage != 0 {
			t.Fatalf("counts %+v", counts)
		}
	})
	t.Run("canonical form is the same on every call", func(t *testing.T) {
		a1, _ := Serialize(d2, 2, nil)
		a2, _ := Serialize(d2, 2, nil)
		if !bytes.Equal(entry.AppendAfterimage(nil, a1), entry.AppendAfterimage(nil, a2)) {
			t.Fatal("two serializations differ")
		}
	})
}

// TestSerializeLoadedChildren: children loaded through physical pointers
// keep their physical addresses, whatever phys says.
func TestSerializeLoadedChildren(t *testing.T) {
	l := newLog(t, nil)
	_, d1 := sevenKeys(t, nil)
	appendIntention(t, l, &intention.Intention{Ops: []intention.Op{putOp("x", "x")}}) // position 1 (content unused)
	ai1, _ := Serialize(d1, 1, nil)
	at := appendAfterimage(t, l, ai1)
	p := nodecache.NewCache(l, nodecache.NewIndex(16), waitLong)
	tree := cowtree.FromRoot(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: at, Off: 6}, p)
	st := processor.NewState(testHeader, tree, 1)
	d2 := mustApply(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{putOp("h", "vh")}})
	never := func(uint64) (uint64, bool) { t.Error("phys asked about a physical child"); return 0, false }
	ai, counts := Serialize(d2, 2, never)
	checkSerialized(t, d2, 2, never, ai, counts)
	if counts != (afterimage.PointerCounts{Self: 3, Afterimage: 2, Nil: 3}) {
		t.Fatalf("counts %+v", counts)
	}
	for _, nd := range ai.Nodes {
		for _, ptr := range []afterimage.Ptr{nd.Left, nd.Right} {
			if ptr.Kind == afterimage.PtrAfterimage && ptr.Pos != at {
				t.Fatalf("physical pointer %v, want into %d", ptr, at)
			}
		}
	}
	if got := treeDump(t, st.Tree()); got != "a=va b=vb c=vc d=vd e=ve f=vf g=vg h=vh " {
		t.Fatalf("tree %q", got)
	}
}

func TestSerializeLargeValuesStayInIntention(t *testing.T) {
	st, _ := sevenKeys(t, nil)
	big := strings.Repeat("B", InlineValueMax+1)
	exact := strings.Repeat("E", InlineValueMax)
	d := mustApply(t, st, 2, &intention.Intention{Snapshot: 1, Ops: []intention.Op{
		putOp("b", big), putOp("c", exact), delOp("a"), putOp("z", ""),
	}})
	ai, counts := Serialize(d, 2, nil)
	checkSerialized(t, d, 2, nil, ai, counts)
	seen := map[string]bool{}
	for _, nd := range ai.Nodes {
		seen[string(nd.Key)] = true
		switch string(nd.Key) {
		case "b":
			if nd.Value != nil || !nd.ValueInIntention || nd.Pos != 2 {
				t.Fatalf("b: value of %d bytes, in intention %v", len(nd.Value), nd.ValueInIntention)
			}
		case "c":
			if string(nd.Value) != exact || nd.ValueInIntention {
				t.Fatalf("c: value of %d bytes, in intention %v", len(nd.Value), nd.ValueInIntention)
			}
		case "a":
			if !nd.Tombstone || nd.Value != nil || nd.ValueInIntention {
				t.Fatalf("a: %v", &nd)
			}
		case "z":
			if nd.Value == nil || len(nd.Value) != 0 || nd.ValueInIntention {
				t.Fatalf("z: empty value became %v", nd.Value)
			}
		}
	}
	for _, k := range []string{"a", "b", "c", "z"} {
		if !seen[k] {
			t.Fatalf("%q not in the delta", k)
		}
	}
}

// Path copies above InlineHeight leave their unchanged values in the
// intention that wrote them; the written entry and the nodes near the leaves
// carry theirs. Evicted and reloaded, every node reads its value back.
func TestSerializeCopiedValuesStayInIntention(t *testing.T) {
	l := newLog(t, nil)
	ctx := context.Background()
	in := &intention.Intention{Snapshot: 0}
	for i := range 64 {
		in.Ops = append(in.Ops, putOp(fmt.Sprintf("k%02d", i), fmt.Sprintf("v%02d", i)))
	}
	st := processor.NewState(testHeader, cowtree.New(nil), 0)
	if _, err := l.Append(ctx, entry.AppendIntention(nil, in)); err != nil { // position 1
		t.Fatal(err)
	}
	mustApply(t, st, 1, in)
	up := &intention.Intention{Snapshot: 1, Ops: []intention.Op{putOp("k17", "new")}}
	if _, err := l.Append(ctx, entry.AppendIntention(nil, up)); err != nil { // position 2
		t.Fatal(err)
	}
	d := mustApply(t, st, 2, up)
	ai, counts := Serialize(d, 2, nil)
	checkSerialized(t, d, 2, nil, ai, counts)
	var byRef, inline int
	for _, nd := range ai.Nodes {
		switch {
		case string(nd.Key) == "k17":
			if string(nd.Value) != "new" || nd.ValueInIntention {
				t.Fatalf("the written entry: %v", &nd)
			}
		case nd.ValueInIntention:
			byRef++
			if nd.Height <= InlineHeight || nd.Pos != 1 {
				t.Fatalf("value left in the intention at height %d, pos %d", nd.Height, nd.Pos)
			}
		default:
			inline++
		}
	}
	if byRef == 0 {
		t.Fatalf("no path copy left its value in the intention (%d nodes)", len(ai.Nodes))
	}
	// Load every node back through a pager that has never seen the values.
	data := entry.AppendAfterimage(nil, ai)
	at, err := l.Append(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	p := nodecache.NewCache(l, nodecache.NewIndex(16), time.Second)
	for off, nd := range ai.Nodes {
		n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: uint64(at), Off: uint32(off)})
		if err != nil {
			t.Fatal(err)
		}
		want := "v" + string(nd.Key[1:])
		if string(nd.Key) == "k17" {
			want = "new"
		}
		if string(n.Value()) != want {
			t.Fatalf("%s reloaded with %q, want %q", nd.Key, n.Value(), want)
		}
	}
	t.Logf("%d nodes: %d values by reference, %d inline besides the written one", len(ai.Nodes), byRef, inline)
}

// TestAppendEntryLargeDeltas checks AppendEntry against the encoded record
// (entry.AppendAfterimage of Serialize) for deltas of more than keptNodes
// nodes, cruzd's combined transactions (a hundred and more sorted writes
// after a checkpoint cut, with deletes and values kept in their
// intentions), and for one entry larger than maxPooledEntry, into a nil
// buffer, one holding a prefix, and a reused one: the same bytes and
// counts whatever the buffer's room, which decides when it is grown.
func TestAppendEntryLargeDeltas(t *testing.T) {
	st := processor.NewState(testHeader, cowtree.New(nil), 0)
	val := func(i, n int) string { return strings.Repeat(string(rune('a'+i%26)), n) }
	in := &intention.Intention{}
	for i := range 3000 {
		in.Ops = append(in.Ops, putOp(fmt.Sprintf("key:%013d", i*7), val(i, 100)))
	}
	mustApply(t, st, 1, in)
	if _, err := st.Cut(2); err != nil {
		t.Fatal(err)
	}
	st.SetEpoch(2)
	phys := func(p uint64) (uint64, bool) { return p + 1000, p%3 == 0 }
	check := func(d *processor.Delta, base uint64) {
		t.Helper()
		ai, counts := Serialize(d, base, phys)
		want := entry.AppendAfterimage(nil, ai)
		reused := make([]byte, 0, 1<<12)
		for _, dst := range [][]byte{nil, []byte("prefix"), reused, reused[:0]} {
			pre := string(dst)
			got, c := AppendEntry(dst, d, base, phys)
			if string(got[:len(pre)]) != pre || string(got[len(pre):]) != string(want) || c != counts {
				t.Fatalf("delta %d (%d nodes), dst of len %d cap %d: AppendEntry differs from the record (counts %+v, want %+v)",
					d.Pos, len(d.Nodes), len(dst), cap(dst), c, counts)
			}
			reused = got
		}
	}
	pos := uint64(3)
	for round := range 24 {
		in := &intention.Intention{Snapshot: pos - 1}
		for i := range 100 + round*7 {
			k := (round*131 + i*37) % 4000 // a quarter of them new keys
			switch {
			case i%23 == 5:
				in.Ops = append(in.Ops, delOp(fmt.Sprintf("key:%013d", k)))
			case i%31 == 7:
				in.Ops = append(in.Ops, putOp(fmt.Sprintf("key:%013d", k), val(i, InlineValueMax+10)))
			default:
				in.Ops = append(in.Ops, putOp(fmt.Sprintf("key:%013d", k), val(i+round, 100)))
			}
		}
		d := mustApply(t, st, pos, in)
		if len(d.Nodes) <= keptNodes {
			t.Fatalf("delta %d has %d nodes, want more than %d", pos, len(d.Nodes), keptNodes)
		}
		check(d, pos-uint64(round%2))
		pos++
	}
	// One entry larger than the largest buffer kept.
	in = &intention.Intention{Snapshot: pos - 1}
	for i := range 9000 {
		in.Ops = append(in.Ops, putOp(fmt.Sprintf("big:%013d", i), val(i, 200)))
	}
	d := mustApply(t, st, pos, in)
	ai, _ := Serialize(d, pos, phys)
	if n := len(entry.AppendAfterimage(nil, ai)); n <= maxPooledEntry {
		t.Fatalf("the large entry has %d bytes, want more than %d", n, maxPooledEntry)
	}
	check(d, pos)
}
