package cowtree

import "bytes"

// Iterator walks live entries (tombstones skipped) in key order, ascending or
// descending. It reads one immutable version; writers never disturb it.
//
//	it := t.Ascend(from)
//	for it.Next() { use(it.Key(), it.Value()) }
//	if err := it.Err(); err != nil { ... }
type Iterator struct {
	t     Tree
	desc  bool
	stack []*Node
	nums  []int64 // the stack's numbers in the image of t's cut (see Tree.Cut)
	cur   *Node
	err   error
	tombs bool
}

// Ascend returns an iterator over keys >= from (nil: from the first key).
func (t *Tree) Ascend(from []byte) *Iterator {
	it := &Iterator{t: *t, stack: make([]*Node, 0, 32), nums: make([]int64, 0, 32)}
	num := t.rootNum()
	n, err := resolveAt(t.root, t.ld, t.cut, num)
	for n != nil && err == nil {
		if from == nil || bytes.Compare(n.Key(), from) >= 0 {
			it.push(n, num)
			n, num, err = t.step(n, num, true)
		} else {
			n, num, err = t.step(n, num, false)
		}
	}
	it.err = err
	return it
}

// Descend returns an iterator over keys < before in descending order (nil:
// from the last key).
func (t *Tree) Descend(before []byte) *Iterator {
	it := &Iterator{t: *t, desc: true, stack: make([]*Node, 0, 32), nums: make([]int64, 0, 32)}
	num := t.rootNum()
	n, err := resolveAt(t.root, t.ld, t.cut, num)
	for n != nil && err == nil {
		if before == nil || bytes.Compare(n.Key(), before) < 0 {
			it.push(n, num)
			n, num, err = t.step(n, num, false)
		} else {
			n, num, err = t.step(n, num, true)
		}
	}
	it.err = err
	return it
}

func (it *Iterator) push(n *Node, num int64) {
	it.stack = append(it.stack, n)
	it.nums = append(it.nums, num)
}

// WithTombstones makes the iterator yield tombstones too.
func (it *Iterator) WithTombstones() *Iterator { it.tombs = true; return it }

// Next advances to the next entry and reports whether there is one.
func (it *Iterator) Next() bool {
	for it.err == nil && len(it.stack) > 0 {
		top := len(it.stack) - 1
		n, num := it.stack[top], it.nums[top]
		it.stack, it.nums = it.stack[:top], it.nums[:top]
		// Descending: the left subtree's greatest first; ascending: the
		// right subtree's least.
		c, cn, err := it.t.step(n, num, it.desc)
		for c != nil && err == nil {
			it.push(c, cn)
			c, cn, err = it.t.step(c, cn, !it.desc)
		}
		it.err = err
		if it.err != nil {
			break
		}
		if n.tomb && !it.tombs {
			continue
		}
		it.cur = n
		return true
	}
	it.cur = nil
	return false
}

// Node returns the current entry.
func (it *Iterator) Node() *Node { return it.cur }

// Key returns the current key; it must not be modified.
func (it *Iterator) Key() []byte { return it.cur.Key() }

// Value returns the current value; it must not be modified.
func (it *Iterator) Value() []byte { return it.cur.Value() }

// Err returns the error that stopped the iteration, if any.
func (it *Iterator) Err() error { return it.err }
