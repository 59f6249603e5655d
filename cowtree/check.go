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
// on: keys strictly ascending in order, AVL balance, every child
// pointer's subtree size and known height equal to its subtree's, and
// every pointer into the cut's image, (cut, n), equal to the number the
// descent computes for it. It is meant for tests and tools: it costs a
// full read of the tree.
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
	_, _, err = c.check(root, num, "root")
	return err
}

type checker struct {
	t    *Tree
	last []byte
	seen bool
}

// check verifies the subtree at n, node num of the cut's image (-1: not
// in it), and returns its size and height.
func (c *checker) check(n *Node, num int64, path string) (uint32, int8, error) {
	var sizes [2]uint32
	var heights [2]int8
	for i, left := range [2]bool{true, false} {
		r := side(n, left)
		cn := childNum(c.t.cut, r, n, num, left)
		if c.t.cut != 0 && r.kind == AddrIntention && r.pos == c.t.cut && num >= 0 {
			want := num - 1
			if left {
				want = num - 1 - int64(n.right.cnt)
			}
			if int64(r.off) != want {
				return 0, 0, fmt.Errorf("%w: %s: pointer (%d, %d), but the descent numbers the child %d", ErrInvariant, path, r.pos, r.off, want)
			}
		}
		ch, err := resolveAt(r, c.t.ld, c.t.cut, cn)
		if err != nil {
			return 0, 0, err
		}
		name := path + "/R"
		if left {
			name = path + "/L"
		}
		if left {
			if ch != nil {
				if sizes[i], heights[i], err = c.check(ch, cn, name); err != nil {
					return 0, 0, err
				}
			}
			if c.seen && bytes.Compare(c.last, n.Key()) >= 0 {
				return 0, 0, fmt.Errorf("%w: %s: key %q after %q", ErrInvariant, path, n.Key(), c.last)
			}
			c.last, c.seen = append(c.last[:0], n.Key()...), true
		} else if ch != nil {
			if sizes[i], heights[i], err = c.check(ch, cn, name); err != nil {
				return 0, 0, err
			}
		}
		if r.cnt != sizes[i] {
			return 0, 0, fmt.Errorf("%w: %s: pointer to %v says %d nodes, subtree has %d", ErrInvariant, name, r.Addr(), r.cnt, sizes[i])
		}
		if r.h >= 0 && r.h != heights[i] {
			return 0, 0, fmt.Errorf("%w: %s: pointer to %v says height %d, subtree has %d", ErrInvariant, name, r.Addr(), r.h, heights[i])
		}
	}
	if d := int(heights[0]) - int(heights[1]); d > 1 || d < -1 {
		return 0, 0, fmt.Errorf("%w: %s: heights %d and %d", ErrInvariant, path, heights[0], heights[1])
	}
	h := max(heights[0], heights[1]) + 1
	if n.height != h {
		return 0, 0, fmt.Errorf("%w: %s: node says height %d, has %d", ErrInvariant, path, n.height, h)
	}
	return 1 + sizes[0] + sizes[1], h, nil
}
