package cowtree

import (
	"bytes"
	"fmt"
	"testing"
)

func TestRelocateCopiesEveryNode(t *testing.T) {
	tr := New(nil)
	pos := uint64(1)
	for i := range 200 {
		d := tr.Begin(pos)
		if err := d.Put([]byte(fmt.Sprintf("k%03d", i)), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if i%7 == 3 {
			if err := d.Delete([]byte(fmt.Sprintf("k%03d", i-2))); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if tr, _, err = d.Finish(); err != nil {
			t.Fatal(err)
		}
		pos++
	}
	cut := pos + 5
	rt, nodes, old, err := tr.Relocate(cut)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != len(old) || len(nodes) != 200 {
		t.Fatalf("%d nodes, %d replaced, want 200 each", len(nodes), len(old))
	}
	for i, n := range nodes {
		if a := n.Addr(); a.Kind != AddrIntention || a.Pos != cut || a.Off != uint32(i) {
			t.Fatalf("node %d has address %v", i, a)
		}
		for _, r := range []*Ref{n.Left(), n.Right()} {
			if c := r.Node(); c != nil && (r.Addr() != c.Addr() || c.Off() >= uint32(i)) {
				t.Fatalf("node %d: child pointer %v to %v", i, r.Addr(), c.Addr())
			}
		}
	}
	if root, _ := rt.RootNode(); root != nodes[len(nodes)-1] {
		t.Fatalf("root is not the last node")
	}
	a, b := tr.Ascend(nil).WithTombstones(), rt.Ascend(nil).WithTombstones()
	for a.Next() {
		if !b.Next() || !bytes.Equal(a.Key(), b.Key()) || !bytes.Equal(a.Value(), b.Value()) {
			t.Fatalf("relocated tree differs at %q", a.Key())
		}
	}
	if b.Next() {
		t.Fatalf("relocated tree has more entries")
	}
	// Deltas after the cut copy relocated nodes, never older ones.
	d := rt.Begin(cut + 1)
	if err := d.Put([]byte("k100"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	nt, fresh, err := d.Finish()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range fresh {
		for _, r := range []*Ref{n.Left(), n.Right()} {
			if a := r.Addr(); a.Kind == AddrIntention && a.Pos != cut && a.Pos != cut+1 {
				t.Fatalf("pointer %v escapes the relocation", a)
			}
		}
	}
	if v, ok, _ := nt.Get([]byte("k100")); !ok || string(v) != "x" {
		t.Fatalf("get after relocation: %q %v", v, ok)
	}
	if _, _, _, err := nt.Relocate(cut); err == nil {
		t.Fatalf("relocation below the tree's positions accepted")
	}
	empty := New(nil)
	if et, n, _, err := empty.Relocate(3); err != nil || len(n) != 0 || !et.Root().IsNil() {
		t.Fatalf("empty relocation: %v %d", err, len(n))
	}
}
