package cowtree

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrShortOut is returned by LookupMany when out has fewer entries than keys.
var ErrShortOut = errors.New("cowtree: result slice shorter than the keys")

// manyBlock is how many keys LookupMany walks down the tree together. Each
// pass steps every unfinished key one level; the node loads of one pass
// do not depend on each other, so the processor overlaps their cache
// misses. 16 paths fill the load buffers of current cores without making
// the per-key state outgrow the registers and the first cache line or two.
const manyBlock = 16

// LookupMany is Lookup for each of keys: out[i] is keys[i]'s entry,
// tombstones included, or nil. out must have at least len(keys) entries;
// any number of keys may be given, duplicates and absent keys included.
// The keys are walked down the tree a block at a time, one level of every
// key of the block per pass, so that the cache misses of independent paths
// overlap instead of queueing one behind the other. Nodes not in memory are
// loaded through the tree's loader, as Lookup loads them, and count as used
// for the cache as Lookup's do.
//
// On an error (a node that cannot be loaded) it returns the error, wrapped
// with the index of the key whose path met it; out's entries are then
// unspecified.
func (t *Tree) LookupMany(keys [][]byte, out []*Node) error {
	if len(out) < len(keys) {
		return fmt.Errorf("cowtree: lookup many: %d results for %d keys: %w", len(out), len(keys), ErrShortOut)
	}
	if len(keys) == 0 {
		return nil
	}
	rn := t.rootNum()
	root, err := resolveAt(t.root, t.ld, t.cut, rn)
	if err != nil {
		return fmt.Errorf("cowtree: lookup many: root: %w", err)
	}
	for base := 0; base < len(keys); base += manyBlock {
		end := min(base+manyBlock, len(keys))
		if err := t.lookupBlock(root, keys[base:end], out[base:end]); err != nil {
			var be *blockError
			if errors.As(err, &be) {
				return fmt.Errorf("cowtree: lookup many: key %d: %w", base+be.i, be.err)
			}
			return err
		}
	}
	return nil
}

// blockError is a load error met on the path of key i of a block.
type blockError struct {
	i   int
	err error
}

func (e *blockError) Error() string { return e.err.Error() }
func (e *blockError) Unwrap() error { return e.err }

// lookupBlock looks up at most manyBlock keys from root, in lockstep,
// through the nodes in memory, as Lookup walks them; a key whose path meets
// a node not in memory is finished alone with the numbered walk
// (lookupNumbered), which loads it. With out nil it is Prefetch's walk: it
// gives no results, marks no node as read, and stops a path at the first
// node not in memory instead of loading it.
func (t *Tree) lookupBlock(root *Node, keys [][]byte, out []*Node) error {
	hint := out == nil
	var (
		kps [manyBlock]keyPrefix
		cur [manyBlock]*Node
		act [manyBlock]uint8 // indices of the keys still descending
	)
	keys = keys[:min(len(keys), manyBlock)]
	if !hint {
		out = out[:len(keys)]
		clear(out)
	}
	na := 0
	for i, k := range keys {
		if root == nil {
			continue
		}
		kps[i], cur[i] = prefix(k), root
		act[na] = uint8(i)
		na++
	}
	for na > 0 {
		// One pass: every active key compares with its node and steps to
		// the child; finished keys are dropped from act in place.
		w := 0
		for _, i := range act[:na] {
			n := cur[i]
			// The side is chosen without a branch on the comparison: the
			// keys go left or right at random, so a branch would be
			// mispredicted every other step, each time dropping the loads
			// the processor had started for the keys after this one in
			// the pass, which is what overlaps their misses
			// (BenchmarkLookupMany/LookupMany16: 313 -> 280 ns a key).
			less, tie := prefixOrder(kps[i], n)
			if tie {
				c := n.compare(kps[i], keys[i])
				if c == 0 {
					if !hint {
						out[i] = n
					}
					continue
				}
				less = b2u(c < 0)
			}
			r := sideOf(n, less)
			next := r.Node()
			if next == nil {
				if r.kind == AddrNone || hint {
					continue // absent, or not in memory for a hint
				}
				m, err := t.lookupNumbered(kps[i], keys[i])
				if err != nil {
					return &blockError{i: int(i), err: err}
				}
				out[i] = m
				continue
			}
			if !hint {
				next.touch()
			}
			cur[i] = next
			act[w] = i
			w++
		}
		na = w
	}
	return nil
}

// prefixOrder compares kp with n's key prefix (Node.compare's first
// steps) without branches: less when kp orders before it, tie when the
// prefixes are equal (then only Node.compare tells).
func prefixOrder(kp keyPrefix, n *Node) (less uint8, tie bool) {
	x := n.keyExt()
	hiLt, hiEq := b2u(kp.hi < n.kp.hi), b2u(kp.hi == n.kp.hi)
	loLt, loEq := b2u(kp.lo < n.kp.lo), b2u(kp.lo == n.kp.lo)
	xLt, xEq := b2u(kp.x < x), b2u(kp.x == x)
	return hiLt | hiEq&(loLt|loEq&xLt), hiEq&loEq&xEq != 0
}

// b2u is 1 for true, 0 for false (a move, not a branch).
func b2u(b bool) uint8 {
	var u uint8
	if b {
		u = 1
	}
	return u
}

// sideOf is side(n, left == 1), chosen by arithmetic on the address
// rather than a branch (the compiler makes a branch of the two-way choice).
func sideOf(n *Node, left uint8) *Ref {
	const l, r = unsafe.Offsetof(n.left), unsafe.Offsetof(n.right)
	return (*Ref)(unsafe.Add(unsafe.Pointer(n), r-uintptr(left)*(r-l)))
}
