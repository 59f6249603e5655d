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
	Pos  uint64 // PtrAfterimage, PtrIntention
	Off  uint32 // PtrSelf, PtrAfterimage, PtrIntention
}

// Node is one tree node of an afterimage.
type Node struct {
	Key       []byte
	Value     []byte
	Pos       uint64 // position of the intention that last wrote this entry
	Tombstone bool   // the entry is a delete marker
	MaxPos    uint64 // highest Pos in this node's subtree
	MinTomb   uint64 // lowest tombstone Pos in the subtree; math.MaxUint64 if none
	Height    uint8  // subtree height (balancing)
	Left      Ptr
	Right     Ptr
}

// Afterimage is the delta of the intention at log position Intention: the
// nodes replay created, in deterministic post-order, root last. An afterimage
// with no nodes describes an empty tree.
type Afterimage struct {
	Intention uint64
	Nodes     []Node
}
