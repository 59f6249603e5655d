package cowtree

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrInvariant is returned by Check for a tree that breaks one of its
// invariants.
var ErrInvariant = errors.New("cowtree: tree invariant broken")

// Check walks the whole version t, loading what is not in memory, and
// verifies the invariants every reader and every checkpoint image relies
// on: keys strictly ascending in order, every node's inline key prefix
// its key's, AVL balance, every child pointer's subtree size and known
// height and summaries equal to its subtree's, every node's summaries
// (MaxPos, MinTomb) its subtree's, and every pointer into the cut's image,
// (cut, n), equal to the number the descent computes for it. It is meant
// for tests and tools: it costs a full read of the tree.
func (t *Tree) Check() error {
	c := checker{t: t}
	num := t.rootNum()
	root, err := resolveAt(t.root, t.ld, t.cut, num)
	if err != nil {
		return err
	}
	if root == nil {
		return nil
	}
	_, err = c.check(root, num, "root")
	return err
}

type checker struct {
	t    *Tree
	last []byte
	seen bool
}

// summary is what check finds of a subtree.
type summary struct {
	size    uint32
	height  int8
	maxPos  uint64
	minTomb uint64
}

// check verifies the subtree at n, node num of the cut's image (-1: not
// in it), and returns its summary.
func (c *checker) check(n *Node, num int64, path string) (summary, error) {
	var subs [2]summary
	subs[0].minTomb, subs[1].minTomb = NoTombstone, NoTombstone
	for i, left := range [2]bool{true, false} {
		r := side(n, left)
		cn := childNum(c.t.cut, r, n, num, left)
		if c.t.cut != 0 && r.kind == AddrIntention && r.pos == c.t.cut && num >= 0 {
			want := num - 1
			if left {
				want = num - 1 - int64(n.right.cnt)
			}
			if int64(r.off) != want {
				return summary{}, fmt.Errorf("%w: %s: pointer (%d, %d), but the descent numbers the child %d", ErrInvariant, path, r.pos, r.off, want)
			}
		}
		ch, err := resolveAt(r, c.t.ld, c.t.cut, cn)
		if err != nil {
			return summary{}, err
		}
		name := path + "/R"
		if left {
			name = path + "/L"
		}
		if left {
			if ch != nil {
				if subs[i], err = c.check(ch, cn, name); err != nil {
					return summary{}, err
				}
			}
			if c.seen && bytes.Compare(c.last, n.Key()) >= 0 {
				return summary{}, fmt.Errorf("%w: %s: key %q after %q", ErrInvariant, path, n.Key(), c.last)
			}
			c.last, c.seen = append(c.last[:0], n.Key()...), true
		} else if ch != nil {
			if subs[i], err = c.check(ch, cn, name); err != nil {
				return summary{}, err
			}
		}
		sub := subs[i]
		if r.cnt != sub.size {
			return summary{}, fmt.Errorf("%w: %s: pointer to %v says %d nodes, subtree has %d", ErrInvariant, name, r.Addr(), r.cnt, sub.size)
		}
		if r.h >= 0 && (r.h != sub.height || r.maxPos != sub.maxPos || r.minTomb != sub.minTomb) {
			return summary{}, fmt.Errorf("%w: %s: pointer to %v says height %d, max pos %d, min tombstone %d; subtree has %d, %d, %d",
				ErrInvariant, name, r.Addr(), r.h, r.maxPos, r.minTomb, sub.height, sub.maxPos, sub.minTomb)
		}
	}
	if d := int(subs[0].height) - int(subs[1].height); d > 1 || d < -1 {
		return summary{}, fmt.Errorf("%w: %s: heights %d and %d", ErrInvariant, path, subs[0].height, subs[1].height)
	}
	s := summary{
		size:    1 + subs[0].size + subs[1].size,
		height:  max(subs[0].height, subs[1].height) + 1,
		maxPos:  max(n.pos, subs[0].maxPos, subs[1].maxPos),
		minTomb: min(subs[0].minTomb, subs[1].minTomb),
	}
	if n.tomb {
		s.minTomb = min(s.minTomb, n.pos)
	}
	if n.keyPrefix() != prefix(n.Key()) {
		return summary{}, fmt.Errorf("%w: %s: inline prefix of key %q is %x, want %x", ErrInvariant, path, n.Key(), n.keyPrefix(), prefix(n.Key()))
	}
	if n.height != s.height {
		return summary{}, fmt.Errorf("%w: %s: node says height %d, has %d", ErrInvariant, path, n.height, s.height)
	}
	if n.MaxPos() != s.maxPos || n.MinTomb() != s.minTomb {
		return summary{}, fmt.Errorf("%w: %s: node says max pos %d, min tombstone %d; subtree has %d, %d", ErrInvariant, path, n.MaxPos(), n.MinTomb(), s.maxPos, s.minTomb)
	}
	return s, nil
}
