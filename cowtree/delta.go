package cowtree

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrDeltaOrder is returned when a delta's id is not above every position
// already in the tree.
var ErrDeltaOrder = errors.New("cowtree: delta id not above the tree's positions")

// Delta builds the next version of a tree: the changes of one intention. Each
// node on a changed path is copied at most once per delta; later changes in
// the same delta modify the copy in place. A Delta is used by one goroutine;
// the version it starts from is never modified.
type Delta struct {
	id       uint64
	root     *Node
	ld       Loader
	err      error
	done     bool
	replaced []*Node
}

// Begin starts delta id on top of t. Every entry written through the delta
// carries position id, which must be greater than every position in t.
func (t *Tree) Begin(id uint64) *Delta {
	d := &Delta{id: id, ld: t.ld, replaced: make([]*Node, 0, 32)}
	d.root, d.err = resolve(t.root, t.ld)
	if d.err == nil && d.root != nil && d.root.maxPos >= id {
		d.err = fmt.Errorf("%w: delta %d, tree has %d", ErrDeltaOrder, id, d.root.maxPos)
	}
	return d
}

// ID returns the delta's id (the intention position).
func (d *Delta) ID() uint64 { return d.id }

// Err returns the first error met (a failed load); once set, the delta is
// unusable.
func (d *Delta) Err() error { return d.err }

// Put sets key to value. key and value are copied.
func (d *Delta) Put(key, value []byte) error { return d.write(key, value, false) }

// Delete replaces key's entry with a tombstone carrying the delta's position,
// so later conflict checks see the delete; the tombstone is dropped by
// DropTombstones once it is older than the conflict window.
func (d *Delta) Delete(key []byte) error { return d.write(key, nil, true) }

func (d *Delta) write(key, value []byte, tomb bool) error {
	if d.err != nil {
		return d.err
	}
	if d.done {
		return errors.New("cowtree: delta already finished")
	}
	root, err := d.put(d.root, prefix(key), joinKV(key, value), uint32(len(key)), tomb)
	if err != nil {
		d.err = err
		return err
	}
	d.root = root
	return nil
}

func (d *Delta) child(r *Ref) *Node {
	if d.err != nil {
		return nil
	}
	if n := r.Node(); n != nil {
		return n // the processor's own walks do not count as use for the cache
	}
	n, err := resolve(r, d.ld)
	if err != nil {
		d.err = err
	}
	return n
}

// own returns n itself when this delta created it, else a fresh copy.
func (d *Delta) own(n *Node) *Node {
	if n.akind == AddrIntention && n.apos == d.id {
		return n
	}
	d.replaced = append(d.replaced, n)
	c := &Node{
		kp:      n.kp,
		kv:      n.kv,
		klen:    n.klen,
		vlen:    n.vlen,
		height:  n.height,
		tomb:    n.tomb,
		pos:     n.pos,
		maxPos:  n.maxPos,
		minTomb: n.minTomb,
		akind:   AddrIntention,
		apos:    d.id,
	}
	c.left.copyFrom(&n.left)
	c.right.copyFrom(&n.right)
	return c
}

func (d *Delta) put(n *Node, kp keyPrefix, kv []byte, klen uint32, tomb bool) (*Node, error) {
	if n == nil {
		m := &Node{tomb: tomb, pos: d.id, akind: AddrIntention, apos: d.id, height: 1, maxPos: d.id, minTomb: NoTombstone}
		m.setKV(kv, int(klen))
		m.left.minTomb, m.right.minTomb = NoTombstone, NoTombstone
		if tomb {
			m.minTomb = d.id
		}
		return m, nil
	}
	c := n.compare(kp, kv[:klen])
	m := d.own(n)
	if c == 0 {
		m.setKV(kv, int(klen))
		m.tomb, m.pos = tomb, d.id
		d.update(m)
		return m, d.err
	}
	var r *Ref
	if c < 0 {
		r = &m.left
	} else {
		r = &m.right
	}
	ch := d.child(r)
	if d.err != nil {
		return nil, d.err
	}
	nc, err := d.put(ch, kp, kv, klen, tomb)
	if err != nil {
		return nil, err
	}
	r.set(nc)
	return d.balance(m), d.err
}

// update recomputes m's summaries from its children.
func (d *Delta) update(m *Node) {
	lh, rh := d.refHeight(&m.left), d.refHeight(&m.right)
	m.height = max(lh, rh) + 1
	m.maxPos = max(m.pos, m.left.maxPos, m.right.maxPos)
	m.minTomb = min(m.left.minTomb, m.right.minTomb)
	if m.tomb {
		m.minTomb = min(m.minTomb, m.pos)
	}
}

// refHeight returns the height of the child behind r, learning the child's
// summaries (by loading it) when the ref does not know them yet. r belongs
// to a node owned by the delta.
func (d *Delta) refHeight(r *Ref) int8 {
	if r.h < 0 {
		c := d.child(r)
		if c == nil {
			return 0
		}
		r.set(c)
	}
	return r.h
}

// balance restores the AVL invariant at m (owned by the delta) and returns
// the new subtree root.
func (d *Delta) balance(m *Node) *Node {
	bf := int(d.refHeight(&m.left)) - int(d.refHeight(&m.right))
	if d.err != nil {
		return m
	}
	switch {
	case bf > 1:
		l := d.own(d.child(&m.left))
		if d.refHeight(&l.left) < d.refHeight(&l.right) {
			m.left.set(d.rotateLeft(l))
		} else {
			m.left.set(l)
		}
		return d.rotateRight(m)
	case bf < -1:
		r := d.own(d.child(&m.right))
		if d.refHeight(&r.right) < d.refHeight(&r.left) {
			m.right.set(d.rotateRight(r))
		} else {
			m.right.set(r)
		}
		return d.rotateLeft(m)
	}
	d.update(m)
	return m
}

// rotateRight lifts m's left child; m is owned.
func (d *Delta) rotateRight(m *Node) *Node {
	l := d.own(d.child(&m.left))
	m.left.copyFrom(&l.right)
	d.update(m)
	l.right.set(m)
	d.update(l)
	return l
}

// rotateLeft lifts m's right child; m is owned.
func (d *Delta) rotateLeft(m *Node) *Node {
	r := d.own(d.child(&m.right))
	m.right.copyFrom(&r.left)
	d.update(m)
	r.left.set(m)
	d.update(r)
	return r
}

// DropTombstones removes every tombstone written before position before.
// The result depends only on the tree and before, so every node drops the
// same tombstones at the same delta.
func (d *Delta) DropTombstones(before uint64) error {
	for d.err == nil && d.root != nil && d.root.minTomb < before {
		n := d.root
		var key []byte
		for n != nil && key == nil {
			switch {
			case n.tomb && n.pos < before:
				key = n.Key()
			default:
				if l := d.child(&n.left); l != nil && l.minTomb < before {
					n = l
				} else {
					n = d.child(&n.right)
				}
			}
		}
		if key == nil {
			if d.err == nil {
				d.err = errors.New("cowtree: tombstone summary disagrees with the tree")
			}
			break
		}
		d.root = d.remove(d.root, key)
	}
	return d.err
}

// remove deletes key's node from the subtree at n, which must contain it.
func (d *Delta) remove(n *Node, key []byte) *Node {
	if n == nil || d.err != nil {
		return n
	}
	c := bytes.Compare(key, n.Key())
	if c != 0 {
		m := d.own(n)
		r := &m.right
		if c < 0 {
			r = &m.left
		}
		r.set(d.remove(d.child(r), key))
		return d.balance(m)
	}
	if n.delta() != d.id {
		d.replaced = append(d.replaced, n)
	}
	l, r := d.child(&n.left), d.child(&n.right)
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	}
	// Replace n by its successor, the minimum of the right subtree.
	succ := r
	for s := d.child(&succ.left); s != nil; s = d.child(&succ.left) {
		succ = s
	}
	newRight := d.remove(r, succ.Key())
	m := d.own(succ)
	m.left.copyFrom(&n.left)
	m.right.set(newRight)
	return d.balance(m)
}

// Replaced returns the nodes of earlier versions that this delta copied or
// removed: they are not part of the version Finish returns (a node may be
// listed twice). Caches use it to stop counting them at once.
func (d *Delta) Replaced() []*Node { return d.replaced }

// Finish ends the delta: it numbers the delta's new nodes in post-order (the
// afterimage order, root last), gives each its intention address, and
// returns the new version and those nodes. The nodes must not be modified.
func (d *Delta) Finish() (Tree, []*Node, error) {
	if d.err != nil {
		return Tree{}, nil, d.err
	}
	d.done = true
	// Fresh nodes are about as many as replaced ones, plus new leaves.
	nodes := make([]*Node, 0, len(d.replaced)+4)
	nt := Tree{ld: d.ld, root: &Ref{minTomb: NoTombstone}}
	if d.root != nil {
		if d.root.delta() == d.id {
			nodes = d.number(d.root, nodes)
		}
		nt.root.set(d.root)
	}
	return nt, nodes, nil
}

// number appends the delta's nodes of the subtree at n (n is one) to nodes
// in post-order, setting their offsets and their refs' offsets. A ref says
// whether its child is this delta's, so old children are not looked at.
func (d *Delta) number(n *Node, nodes []*Node) []*Node {
	if r := &n.left; r.kind == AddrIntention && r.pos == d.id {
		c := (*Node)(r.p) // unpublished: plain reads are safe
		nodes = d.number(c, nodes)
		r.off = c.off
	}
	if r := &n.right; r.kind == AddrIntention && r.pos == d.id {
		c := (*Node)(r.p)
		nodes = d.number(c, nodes)
		r.off = c.off
	}
	n.off = uint32(len(nodes))
	return append(nodes, n)
}
