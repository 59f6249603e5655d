package cowtree

import "bytes"

// Iterator walks live entries (tombstones skipped) in key order, ascending or
// descending. It reads one immutable version; writers never disturb it.
//
//	it := t.Ascend(from)
//	for it.Next() { use(it.Key(), it.Value()) }
//	if err := it.Err(); err != nil { ... }
type Iterator struct {
	ld    Loader
	desc  bool
	stack []*Node
	cur   *Node
	err   error
	tombs bool
}

// Ascend returns an iterator over keys >= from (nil: from the first key).
func (t *Tree) Ascend(from []byte) *Iterator {
	it := &Iterator{ld: t.ld, stack: make([]*Node, 0, 32)}
	n, err := resolve(t.root, t.ld)
	for n != nil && err == nil {
		if from == nil || bytes.Compare(n.Key(), from) >= 0 {
			it.stack = append(it.stack, n)
			n, err = resolve(&n.left, t.ld)
		} else {
			n, err = resolve(&n.right, t.ld)
		}
	}
	it.err = err
	return it
}

// Descend returns an iterator over keys < before in descending order (nil:
// from the last key).
func (t *Tree) Descend(before []byte) *Iterator {
	it := &Iterator{ld: t.ld, desc: true, stack: make([]*Node, 0, 32)}
	n, err := resolve(t.root, t.ld)
	for n != nil && err == nil {
		if before == nil || bytes.Compare(n.Key(), before) < 0 {
			it.stack = append(it.stack, n)
			n, err = resolve(&n.right, t.ld)
		} else {
			n, err = resolve(&n.left, t.ld)
		}
	}
	it.err = err
	return it
}

// WithTombstones makes the iterator yield tombstones too.
func (it *Iterator) WithTombstones() *Iterator { it.tombs = true; return it }

// Next advances to the next entry and reports whether there is one.
func (it *Iterator) Next() bool {
	for it.err == nil && len(it.stack) > 0 {
		n := it.stack[len(it.stack)-1]
		it.stack = it.stack[:len(it.stack)-1]
		var c *Node
		if it.desc {
			c, it.err = resolve(&n.left, it.ld)
			for c != nil && it.err == nil {
				it.stack = append(it.stack, c)
				c, it.err = resolve(&c.right, it.ld)
			}
		} else {
			c, it.err = resolve(&n.right, it.ld)
			for c != nil && it.err == nil {
				it.stack = append(it.stack, c)
				c, it.err = resolve(&c.left, it.ld)
			}
		}
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
