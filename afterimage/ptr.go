package afterimage

import (
	"fmt"
	"strconv"
)

// SelfPtr is a pointer to node off of the same afterimage.
func SelfPtr(off uint32) Ptr { return Ptr{Kind: PtrSelf, Off: off} }

// AfterimagePtr is a physical pointer: node off of the afterimage at log
// position pos.
func AfterimagePtr(pos uint64, off uint32) Ptr {
	return Ptr{Kind: PtrAfterimage, Pos: pos, Off: off}
}

// IntentionPtr is a pointer to node off of the active afterimage of the
// intention at log position pos.
func IntentionPtr(pos uint64, off uint32) Ptr {
	return Ptr{Kind: PtrIntention, Pos: pos, Off: off}
}

func (k PtrKind) String() string {
	switch k {
	case PtrNil:
		return "nil"
	case PtrSelf:
		return "self"
	case PtrAfterimage:
		return "afterimage"
	case PtrIntention:
		return "intention"
	}
	return "ptrkind(" + strconv.Itoa(int(k)) + ")"
}

// Known reports whether k is a pointer kind this version understands.
func (k PtrKind) Known() bool { return k <= PtrIntention }

// String formats p for inspection: "nil", "self(3)", "afterimage(120,4)",
// "intention(118,2)" (position, offset).
func (p Ptr) String() string {
	switch p.Kind {
	case PtrNil:
		return "nil"
	case PtrSelf:
		return "self(" + strconv.FormatUint(uint64(p.Off), 10) + ")"
	case PtrAfterimage, PtrIntention:
		return p.Kind.String() + "(" + strconv.FormatUint(p.Pos, 10) + "," +
			strconv.FormatUint(uint64(p.Off), 10) + ")"
	}
	return fmt.Sprintf("ptr(kind=%d,pos=%d,off=%d)", p.Kind, p.Pos, p.Off)
}

// String formats n on one line for inspection tools.
func (n *Node) String() string {
	mt := "none"
	if n.MinTomb != NoTombstone {
		mt = strconv.FormatUint(n.MinTomb, 10)
	}
	val := fmt.Sprintf("%q", n.Value)
	if n.Value == nil {
		val = "nil"
	}
	return fmt.Sprintf("key=%q value=%s pos=%d tomb=%t maxpos=%d mintomb=%s height=%d left=%s/%d right=%s/%d",
		n.Key, val, n.Pos, n.Tombstone, n.MaxPos, mt, n.Height, n.Left, n.LeftCount, n.Right, n.RightCount)
}

// PointerCounts counts child pointers by kind.
type PointerCounts struct {
	Nil, Self, Afterimage, Intention int
	// Image counts the intention pointers to a checkpoint's image, node n
	// of the cut (c, n): they have no physical form, as an image is
	// several entries; they are not in Intention.
	Image int
}

// Add adds o to c.
func (c *PointerCounts) Add(o PointerCounts) {
	c.Nil += o.Nil
	c.Self += o.Self
	c.Afterimage += o.Afterimage
	c.Image += o.Image
	c.Intention += o.Intention
}

// Total is the number of pointers counted.
func (c PointerCounts) Total() int { return c.Nil + c.Self + c.Afterimage + c.Intention + c.Image }

func (c *PointerCounts) count(p Ptr) {
	switch p.Kind {
	case PtrNil:
		c.Nil++
	case PtrSelf:
		c.Self++
	case PtrAfterimage:
		c.Afterimage++
	case PtrIntention:
		c.Intention++
	}
}

// PointerCounts counts the child pointers (two per node) of a by kind, for
// statistics and inspection. Pointers of unknown kinds are not counted.
func (a *Afterimage) PointerCounts() PointerCounts {
	var c PointerCounts
	for i := range a.Nodes {
		c.count(a.Nodes[i].Left)
		c.count(a.Nodes[i].Right)
	}
	return c
}

// Validate checks the structural rules that Decode enforces, so that a
// writer can check an afterimage before appending it:
//
//   - at most 2^32 nodes (offsets are uint32);
//   - every node's Height is at least 1;
//   - every pointer's kind is known;
//   - a PtrSelf points to an earlier node (post-order: children come before
//     their parent), and has Pos 0;
//   - a PtrNil has Pos and Off 0.
//
// It does not check that the nodes form a tree, nor keys, values or
// positions. An error wraps ErrMalformed.
func (a *Afterimage) Validate() error {
	if uint64(len(a.Nodes)) > 1<<32 {
		return malformedf("%d nodes, more than offsets can address", len(a.Nodes))
	}
	if a.Base > a.Intention {
		return malformedf("base %d after the intention %d", a.Base, a.Intention)
	}
	for i := range a.Nodes {
		if err := a.Nodes[i].check(i); err != nil {
			return err
		}
	}
	return nil
}

// check checks node i of an afterimage.
func (n *Node) check(i int) error {
	if n.Height == 0 {
		return malformedf("node %d: height 0", i)
	}
	if n.ValueInIntention && (n.Value != nil || n.Tombstone) {
		return malformedf("node %d: value in the intention, yet a value or a tombstone here", i)
	}
	if n.ValueCut != 0 && (n.ValueInIntention || n.Tombstone || n.ValueCut <= n.Pos) {
		return malformedf("node %d: value in the image of cut %d, yet in the intention, a tombstone, or written at %d", i, n.ValueCut, n.Pos)
	}
	if err := n.Left.check(i); err != nil {
		return fmt.Errorf("%w: node %d: left: %s", ErrMalformed, i, err)
	}
	if err := n.Right.check(i); err != nil {
		return fmt.Errorf("%w: node %d: right: %s", ErrMalformed, i, err)
	}
	return nil
}

// check checks a pointer of node i.
func (p Ptr) check(i int) error {
	switch p.Kind {
	case PtrNil:
		if p.Pos != 0 || p.Off != 0 {
			return errPtr("nil pointer with a position or offset")
		}
	case PtrSelf:
		if p.Pos != 0 {
			return errPtr("self pointer with a position")
		}
		if uint64(p.Off) >= uint64(i) {
			return errPtr(fmt.Sprintf("self pointer to node %d, not before node %d", p.Off, i))
		}
	case PtrAfterimage, PtrIntention:
	default:
		return errPtr(fmt.Sprintf("pointer of kind %d", p.Kind))
	}
	return nil
}
