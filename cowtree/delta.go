package cowtree

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
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
	// cut is the tree's cut (see Tree.Cut), and nums the numbers in its
	// image of the nodes of the cut's tree this delta met: a copy of one
	// of them points at its children by their numbers (see own). A delta
	// of a few writes meets a few dozen such nodes, so they are a list
	// searched from its end (the nodes met last are asked for first);
	// bigNums takes over past maxListedNums, for deltas of many writes.
	cut     uint64
	nums    []numbered
	bigNums map[*Node]int64
	mapped  bool // bigNums holds the numbers (nums is unused)
	// fresh counts the nodes this delta made, a bound of what Finish
	// numbers (a node made and then removed is counted too).
	fresh int
	// path is the last write's path from the root, every node on it the
	// delta's own, and last that write's key: a write of a greater key
	// (an intention's writes are in key order) starts at the deepest node
	// of path whose subtree holds its key instead of at the root (see
	// write). The pointers from each node of path to the next may lag
	// behind the summaries of what they point at (see Delta.flushPath).
	path []pathStep
	last []byte
	// noFinger makes every write start at the root (tests compare the two).
	noFinger bool
}

// pathStep is a node of the last write's path.
type pathStep struct {
	m *Node
	// hi is the nearest node above m whose left subtree holds m: every
	// key of m's subtree is below hi's (nil: no bound).
	hi   *Node
	left bool // the path goes on to m's left child (else right, or ends)
}

// Scratch is the memory a Delta uses only while it is being made: the
// Delta itself and its record of the cut's numbers. A caller that makes
// one delta after another on one goroutine (the processor) keeps one
// Scratch and passes it to every BeginScratch, so that these are not
// allocated again for every delta. It changes nothing a delta computes.
type Scratch struct {
	d Delta
}

// numbered is a node of the cut's tree and its number in the cut's image.
type numbered struct {
	n *Node
	k int64
}

// maxListedNums is how many numbered nodes a delta keeps in its list
// before it moves them to a map.
const maxListedNums = 96

// Begin starts delta id on top of t. Every entry written through the delta
// carries position id, which must be greater than every position in t.
func (t *Tree) Begin(id uint64) *Delta { return t.BeginScratch(id, 1, nil) }

// BeginScratch is Begin for a delta of about writes writes (a hint: it
// sizes the list of replaced nodes), using s's memory when s is not nil.
// The Delta returned is then s's own: it is valid until the next
// BeginScratch with s, and the slices its Finish and Replaced return are
// the caller's (they are never reused).
func (t *Tree) BeginScratch(id uint64, writes int, s *Scratch) *Delta {
	var d *Delta
	if s != nil {
		// Keep the previous delta's list and map (emptied: every lookup
		// in them is by key, never in their order).
		clear(s.d.nums) // drop the previous delta's nodes
		clear(s.d.path)
		nums, big, path := s.d.nums[:0], s.d.bigNums, s.d.path[:0]
		if len(big) > 0 {
			clear(big)
		}
		s.d = Delta{nums: nums, bigNums: big, path: path}
		d = &s.d
	} else {
		d = &Delta{}
	}
	d.id, d.ld, d.cut = id, t.ld, t.cut
	num := t.rootNum()
	d.root, d.err = resolveAt(t.root, t.ld, t.cut, num)
	d.note(d.root, num)
	if d.err == nil && d.root != nil && d.root.MaxPos() >= id {
		d.err = fmt.Errorf("%w: delta %d, tree has %d", ErrDeltaOrder, id, d.root.MaxPos())
	}
	d.replaced = make([]*Node, 0, replacedHint(d.root, writes))
	return d
}

// replacedHint estimates how many nodes a delta of w writes on the tree at
// root copies: each write copies its path (the height, plus a rotation's
// node or two), and w random writes share the top log2(w) levels of their
// paths; never more than the tree has.
func replacedHint(root *Node, w int) int {
	if root == nil {
		return 0
	}
	w = max(w, 1)
	shared := bits.Len(uint(w)) - 1
	return min(w*max(int(root.height)+2-shared, 2), int(root.count()), 1<<16)
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
	kp, kv := prefix(key), joinKV(key, value)
	s := 0
	if len(d.path) > 0 && !d.noFinger && bytes.Compare(key, d.last) > 0 {
		s = d.pathStart(kp, key)
		// The steps below s leave the path: bring their pointers up to
		// date, bottom first.
		for i := len(d.path) - 1; i > s; i-- {
			d.setRef(side(d.path[i-1].m, d.path[i-1].left), d.path[i].m)
		}
	} else {
		d.flushPath()
	}
	var top, hi *Node
	var nk int64 = -1 // a node of the path is the delta's own
	if len(d.path) > 0 {
		top, hi = d.path[s].m, d.path[s].hi
	} else {
		top, nk = d.root, d.num(d.root)
	}
	var h int8
	if top != nil {
		h = top.height
	}
	d.path = d.path[:s]
	nc, err := d.put(top, nk, hi, kp, kv, uint32(len(key)), tomb)
	if err != nil {
		d.err = err
		return err
	}
	d.last = kv[:len(key)]
	if s == 0 {
		d.root = nc
		return nil
	}
	if nc == top && nc.height == h {
		// Nothing above s changes but its summaries (the pointers
		// down the path), which flushPath or a later write brings up
		// to date: as a write from the root would have found, every
		// node above keeps its children and its height, so balance
		// leaves them as they are.
		return nil
	}
	// The subtree at s changed its root or its height: the nodes above
	// rebalance as a write from the root would have, and the next write
	// starts at the root.
	for i := s - 1; i >= 0; i-- {
		m := d.path[i].m
		d.setRef(side(m, d.path[i].left), nc)
		nc = d.balance(m)
	}
	d.root = nc
	d.path = d.path[:0]
	return d.err
}

// pathStart returns the index of the deepest node of the path whose
// subtree holds key, a key above the last write's (which every subtree of
// the path holds): the first from the bottom whose upper bound is above
// key.
func (d *Delta) pathStart(kp keyPrefix, key []byte) int {
	var seen *Node
	for i := len(d.path) - 1; i > 0; i-- {
		hi := d.path[i].hi
		if hi == nil {
			return i
		}
		if hi == seen {
			continue // the same bound, already found below key
		}
		if hi.compare(kp, key) < 0 {
			return i
		}
		seen = hi
	}
	return 0
}

// flushPath brings the pointers down the last write's path up to date,
// bottom first, and forgets the path: what a write from the root would
// have done along it (see write).
func (d *Delta) flushPath() {
	for i := len(d.path) - 1; i > 0; i-- {
		d.setRef(side(d.path[i-1].m, d.path[i-1].left), d.path[i].m)
	}
	clear(d.path)
	d.path = d.path[:0]
}

// childOf returns p's left (or right) child, loading it if needed.
func (d *Delta) childOf(p *Node, left bool) *Node {
	if d.err != nil {
		return nil
	}
	r := side(p, left)
	num := childNum(d.cut, r, p, d.num(p), left)
	n := r.Node() // the processor's own walks do not count as use for the cache
	if n == nil {
		var err error
		if n, err = resolveAt(r, d.ld, d.cut, num); err != nil {
			d.err = err
			return nil
		}
	}
	d.note(n, num)
	return n
}

// childNumbered is childOf for the paths a write copies (put, balance,
// rotations): it returns the child's number in the cut's image (-1: none)
// with it instead of noting it, since the caller hands the number straight
// to ownNum. A delta of many writes noted every node of every path it
// walked, each a map assignment; only the nodes a later num asks for need
// noting, and those are reached through childOf.
func (d *Delta) childNumbered(p *Node, left bool) (*Node, int64) {
	if d.err != nil {
		return nil, -1
	}
	r := side(p, left)
	num := childNum(d.cut, r, p, d.num(p), left)
	n := r.Node()
	if n == nil {
		var err error
		if n, err = resolveAt(r, d.ld, d.cut, num); err != nil {
			d.err = err
			return nil, -1
		}
	}
	return n, num
}

func side(p *Node, left bool) *Ref {
	if left {
		return &p.left
	}
	return &p.right
}

// note records that n is node num of the cut's image (num -1: it is not).
func (d *Delta) note(n *Node, num int64) {
	if n == nil || num < 0 {
		return
	}
	if d.mapped {
		d.bigNums[n] = num
		return
	}
	if d.nums == nil {
		d.nums = make([]numbered, 0, 32)
	}
	if len(d.nums) < maxListedNums {
		d.nums = append(d.nums, numbered{n, num})
		return
	}
	if d.bigNums == nil {
		d.bigNums = make(map[*Node]int64, 2*maxListedNums)
	}
	for _, e := range d.nums {
		d.bigNums[e.n] = e.k
	}
	d.bigNums[n] = num
	d.mapped = true
}

// num returns n's number in the cut's image, or -1 when n is not in the
// cut's tree (or this delta has not met it).
func (d *Delta) num(n *Node) int64 {
	if d.cut == 0 || n == nil || (n.akind == AddrIntention && n.apos == d.id) {
		return -1 // no cut, or a node of this delta: not in the cut's tree
	}
	if d.mapped {
		if k, ok := d.bigNums[n]; ok {
			return k
		}
		return -1
	}
	for i := len(d.nums) - 1; i >= 0; i-- {
		if d.nums[i].n == n {
			return d.nums[i].k
		}
	}
	return -1
}

// copyChild copies p's left (or right) child pointer into dst, a pointer
// of a node this delta owns. A child in the cut's tree is pointed at by
// its number, (cut, n): that address stays valid once the log below the
// cut is trimmed, so every delta after a cut writes only pointers into the
// cut's image and later deltas. Nothing is relabelled at the cut itself.
func (d *Delta) copyChild(dst *Ref, p *Node, left bool) { d.copyChildOf(dst, p, d.num(p), left) }

// copyChildOf is copyChild for p, node pk of the cut's image (-1: none).
func (d *Delta) copyChildOf(dst *Ref, p *Node, pk int64, left bool) {
	src := side(p, left)
	dst.copyFrom(src)
	if k := childNum(d.cut, src, p, pk, left); k >= 0 {
		dst.setAddr(Addr{Kind: AddrIntention, Pos: d.cut, Off: uint32(k)})
	}
}

// setRef points r, a pointer of a node this delta owns, at n, by n's
// number in the cut's image when n is in the cut's tree.
func (d *Delta) setRef(r *Ref, n *Node) {
	r.set(n)
	if k := d.num(n); k >= 0 {
		r.setAddr(Addr{Kind: AddrIntention, Pos: d.cut, Off: uint32(k)})
	}
}

// own returns n itself when this delta created it, else a fresh copy.
func (d *Delta) own(n *Node) *Node { return d.ownNum(n, d.num(n)) }

// ownNum is own for n, node k of the cut's image (-1: n is not in the
// cut's tree, or there is no cut).
func (d *Delta) ownNum(n *Node, k int64) *Node {
	if n.akind == AddrIntention && n.apos == d.id {
		return n
	}
	d.replaced = append(d.replaced, n)
	d.fresh++
	c := &Node{
		kp:     n.kp,
		kv:     n.kv,
		klen:   n.klen,
		vlen:   n.vlen,
		height: n.height,
		tomb:   n.tomb,
		pos:    n.pos,
		akind:  AddrIntention,
		apos:   d.id,
	}
	c.right.aux = n.right.aux // the key's bytes 16..19 (keyExt)
	d.copyChildOf(&c.left, n, k, true)
	d.copyChildOf(&c.right, n, k, false)
	switch {
	case d.cut == 0:
	case k >= 0:
		c.setImageValue(k) // n is node k of the cut's tree
	default:
		c.left.aux = n.left.aux // n was made after the cut: same cut
	}
	return c
}

// put writes the entry into the subtree at n, node nk of the cut's image
// (-1: none), whose keys are all below hi's (nil: no bound), and returns
// the subtree's new root. It appends the nodes of the entry's path that
// stay in place to d.path.
func (d *Delta) put(n *Node, nk int64, hi *Node, kp keyPrefix, kv []byte, klen uint32, tomb bool) (*Node, error) {
	if n == nil {
		d.fresh++
		m := &Node{tomb: tomb, pos: d.id, akind: AddrIntention, apos: d.id, height: 1}
		m.setKV(kv, int(klen))
		m.left.minTomb, m.right.minTomb = NoTombstone, NoTombstone
		return m, nil
	}
	c := n.compare(kp, kv[:klen])
	m := d.ownNum(n, nk)
	at := len(d.path)
	d.path = append(d.path, pathStep{m: m, hi: hi, left: c < 0})
	if c == 0 {
		m.setKV(kv, int(klen))
		m.tomb, m.pos = tomb, d.id
		m.left.aux = 0 // a new value, written after the cut
		d.update(m)
		return m, d.err
	}
	ch, ck := d.childNumbered(m, c < 0)
	if d.err != nil {
		return nil, d.err
	}
	chi := hi
	if c < 0 {
		chi = m
	}
	nc, err := d.put(ch, ck, chi, kp, kv, klen, tomb)
	if err != nil {
		return nil, err
	}
	d.setRef(side(m, c < 0), nc)
	b := d.balance(m)
	if b != m {
		d.path = d.path[:at] // rotated: m and what is below moved
	}
	return b, d.err
}

// update recomputes m's height from its children, learning their
// summaries (MaxPos and MinTomb then follow from m's refs).
func (d *Delta) update(m *Node) {
	lh, rh := d.refHeight(m, true), d.refHeight(m, false)
	m.height = max(lh, rh) + 1
}

// refHeight returns the height of m's left (or right) child, learning the
// child's summaries (by loading it) when the pointer does not know them
// yet. m is owned by the delta.
func (d *Delta) refHeight(m *Node, left bool) int8 {
	r := side(m, left)
	if r.h < 0 {
		c := d.childOf(m, left)
		if c == nil {
			return 0
		}
		if a := r.Addr(); d.cut != 0 && a.Kind == AddrIntention && a.Pos == d.cut {
			r.learn(c) // keep the relocated address
		} else {
			r.set(c) // the address the node was loaded from: no lookup next time
		}
	}
	return r.h
}

// balance restores the AVL invariant at m (owned by the delta) and returns
// the new subtree root.
func (d *Delta) balance(m *Node) *Node {
	bf := int(d.refHeight(m, true)) - int(d.refHeight(m, false))
	if d.err != nil {
		return m
	}
	switch {
	case bf > 1:
		l := d.ownNum(d.childNumbered(m, true))
		if d.refHeight(l, true) < d.refHeight(l, false) {
			d.setRef(&m.left, d.rotateLeft(l))
		} else {
			d.setRef(&m.left, l)
		}
		return d.rotateRight(m)
	case bf < -1:
		r := d.ownNum(d.childNumbered(m, false))
		if d.refHeight(r, false) < d.refHeight(r, true) {
			d.setRef(&m.right, d.rotateRight(r))
		} else {
			d.setRef(&m.right, r)
		}
		return d.rotateLeft(m)
	}
	d.update(m)
	return m
}

// rotateRight lifts m's left child; m is owned.
func (d *Delta) rotateRight(m *Node) *Node {
	l := d.ownNum(d.childNumbered(m, true))
	d.copyChild(&m.left, l, false)
	d.update(m)
	d.setRef(&l.right, m)
	d.update(l)
	return l
}

// rotateLeft lifts m's right child; m is owned.
func (d *Delta) rotateLeft(m *Node) *Node {
	r := d.ownNum(d.childNumbered(m, false))
	d.copyChild(&m.right, r, true)
	d.update(m)
	d.setRef(&r.left, m)
	d.update(r)
	return r
}

// DropTombstones removes every tombstone written before position before.
// The result depends only on the tree and before, so every node drops the
// same tombstones at the same delta.
func (d *Delta) DropTombstones(before uint64) error {
	d.flushPath()
	for d.err == nil && d.root != nil && d.root.MinTomb() < before {
		n := d.root
		var key []byte
		for n != nil && key == nil {
			switch {
			case n.tomb && n.pos < before:
				key = n.Key()
			default:
				if l := d.childOf(n, true); l != nil && l.MinTomb() < before {
					n = l
				} else {
					n = d.childOf(n, false)
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
		d.setRef(side(m, c < 0), d.remove(d.childOf(m, c < 0), key))
		return d.balance(m)
	}
	if n.delta() != d.id {
		d.replaced = append(d.replaced, n)
	}
	l, r := d.childOf(n, true), d.childOf(n, false)
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	}
	// Replace n by its successor, the minimum of the right subtree.
	succ := r
	for s := d.childOf(succ, true); s != nil; s = d.childOf(succ, true) {
		succ = s
	}
	newRight := d.remove(r, succ.Key())
	m := d.own(succ)
	d.copyChild(&m.left, n, true)
	d.setRef(&m.right, newRight)
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
	d.flushPath()
	d.done = true
	nodes := make([]*Node, 0, d.fresh)
	nt := Tree{ld: d.ld, root: &Ref{minTomb: NoTombstone}, cut: d.cut}
	if d.root != nil {
		if d.root.delta() == d.id {
			nodes = d.number(d.root, nodes)
		}
		d.setRef(nt.root, d.root)
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
