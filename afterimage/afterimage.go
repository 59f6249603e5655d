// Package afterimage defines the afterimage record — the serialized delta of
// one committed intention — and the node pointer encoding. It encodes and
// decodes; it never resolves a pointer.
package afterimage

// PtrKind says how a child pointer addresses its node.
type PtrKind uint8

const (
	// PtrNil is an empty child.
	PtrNil PtrKind = 0
	// PtrSelf is node Off of the same afterimage.
	PtrSelf PtrKind = 1
	// PtrAfterimage is node Off of the afterimage at log position Pos (physical).
	PtrAfterimage PtrKind = 2
	// PtrIntention is node Off of the active afterimage of the intention at
	// log position Pos.
	PtrIntention PtrKind = 3
)

// Ptr is a child pointer.
type Ptr struct {
	Kind PtrKind
	Off  uint32 // PtrSelf, PtrAfterimage, PtrIntention
	Pos  uint64 // PtrAfterimage, PtrIntention
}

// Node is one tree node of an afterimage.
type Node struct {
	Key   []byte
	Value []byte
	Pos   uint64 // position of the intention that last wrote this entry
	// Tombstone: the entry is a delete marker.
	Tombstone bool
	// ValueInIntention: the value is not stored here; it is the value of
	// the last put of Key in the intention at Pos (large values, and the
	// unchanged values of path copies high in the tree, are written once, in
	// the intention, not again in every afterimage that copies the node).
	// Value is then nil.
	ValueInIntention bool
	// ValueCut and ValueNum, when ValueCut is not 0: the entry's value was
	// written at Pos, before the checkpoint cut at ValueCut, and is also the
	// value of node ValueNum of that cut's image, which stores every value
	// (the log below the cut may be trimmed). Value then holds it too (nodes
	// near the leaves, the likeliest to be loaded cold) or is nil (a reader
	// takes it from the image). Path copies after a cut point at the image
	// this way instead of writing every unchanged value again.
	ValueCut uint64
	ValueNum uint32
	Height   uint8  // subtree height (balancing)
	MaxPos   uint64 // highest Pos in this node's subtree
	MinTomb  uint64 // lowest tombstone Pos in the subtree; math.MaxUint64 if none
	Left     Ptr
	Right    Ptr
	// LeftCount and RightCount are the number of nodes in the left and
	// right subtrees (0 for a nil pointer). They give every node of a tree
	// its post-order number from its parent's on the way down, which is how
	// a checkpoint relocates a tree without copying it (see cowtree.Tree.Cut).
	LeftCount, RightCount uint32
}

// Afterimage is the delta of the intention at log position Intention: the
// nodes replay created, in deterministic post-order, root last. An afterimage
// with no nodes describes an empty tree.
type Afterimage struct {
	Intention uint64
	// Base is the newest intention whose tree is fully in the log once this
	// afterimage is: Intention itself when every earlier delta's afterimage
	// was confirmed when this one was written (so every pointer in it, and
	// in what it reaches, resolves); otherwise an older committed intention
	// all of whose predecessors were confirmed, or 0 for the empty tree.
	// Startup resumes from Base, never from a tree that could point at an
	// afterimage a crash prevented from being written.
	Base  uint64
	Nodes []Node
}
