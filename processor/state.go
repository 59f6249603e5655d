// Package processor is cruzdb's transaction processor: it replays the shared
// log in order and decides commit or abort for every intention, producing the
// new tree version (a delta) for each commit.
//
// The package has two parts. State is the deterministic core: given the same
// sequence of entries it makes byte-identical decisions and deltas on every
// node. It reads no clock, no random numbers, no map order and no cache
// state, and it owns no I/O (missing tree nodes come through the tree's
// Loader, which must return exactly what was written). Runner is the I/O
// driver around it: it reads the log ahead of the core on its own goroutine,
// decodes entries there (so the core only checks conflicts and copies paths),
// waits for appends, and fills holes that stay empty past a timeout. A fill
// is itself a log fact that every node then reads, so the timer that decides
// when to fill never makes nodes disagree.
//
// # The rule
//
// An intention at position p with snapshot s aborts iff an intention
// committed at q, s < q < p, wrote a key that p read or a key inside a range
// p scanned, or if p-s exceeds the header's conflict window (too old: the
// tombstones needed to check it may be gone). Otherwise it commits, and its
// ops are applied in order as delta p. Blind writes never conflict. The
// check reads the tree itself: every entry carries the position that last
// wrote it (deletes leave tombstones), every node the highest position in its
// subtree.
package processor

import (
	"fmt"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
)

// Outcome is the decision for one intention.
type Outcome uint8

const (
	// Committed: the intention's writes are applied.
	Committed Outcome = iota + 1
	// Conflict: a key it read or a range it scanned was written after its
	// snapshot.
	Conflict
	// TooOld: its snapshot is older than the conflict window.
	TooOld
	// Invalid: the intention breaks the header's limits or is malformed in
	// meaning (the bytes decoded and the checksum held).
	Invalid
)

func (o Outcome) String() string {
	switch o {
	case Committed:
		return "committed"
	case Conflict:
		return "conflict"
	case TooOld:
		return "too old"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Decision is the processor's verdict on the intention at Pos.
type Decision struct {
	Pos      uint64
	Snapshot uint64
	Token    uint64
	Outcome  Outcome
	// For Conflict: the key that collided and the position that wrote it.
	ConflictKey []byte
	ConflictPos uint64
	// For Invalid: why.
	Reason string
}

// Delta is the result of a committed intention: the new version and the
// nodes it created, in post-order (the afterimage order, root last).
type Delta struct {
	Pos   uint64
	Tree  cowtree.Tree
	Nodes []*cowtree.Node
	Bytes int64 // memory held by Nodes
	// Replaced are nodes of the previous version that this one no longer
	// holds (see cowtree.Delta.Replaced).
	Replaced []*cowtree.Node
	// Checkpoint marks the delta of a checkpoint cut at Pos: Tree is the
	// tree at the cut, whose ImageNodes nodes are the checkpoint's image
	// (see State.Cut; Nodes is empty), written in chunks and completed by
	// a marker.
	Checkpoint bool
	ImageNodes uint64
	// Epoch is the newest checkpoint cut before Pos that this state knows
	// of (see State.SetEpoch): the log below it may be trimmed, so an
	// afterimage of this delta must not leave a value in an intention
	// before it.
	Epoch uint64
}

// State is the deterministic replay state: the tree after position Pos.
type State struct {
	header entry.Header
	tree   cowtree.Tree
	pos    uint64
	epoch  uint64
	// scratch is the memory of the delta being made, reused by the next
	// (it changes nothing the delta computes).
	scratch cowtree.Scratch
}

// SetEpoch tells a state resumed from a safe point which positions may be
// trimmed: everything below epoch. A state resumed from a checkpoint's
// image has the cut; one resumed from an afterimage may use its own
// position, which is never less than the newest cut before it. The epoch
// only decides which values afterimages store inline, never a decision.
func (s *State) SetEpoch(epoch uint64) { s.epoch = epoch }

// NewState returns the state after position pos, whose tree is tree, under
// the database header h.
func NewState(h entry.Header, tree cowtree.Tree, pos uint64) *State {
	return &State{header: h, tree: tree, pos: pos}
}

// Header returns the database header the state decides under.
func (s *State) Header() entry.Header { return s.header }

// Tree returns the current version.
func (s *State) Tree() cowtree.Tree { return s.tree }

// Pos returns the last position applied.
func (s *State) Pos() uint64 { return s.pos }

// Skip records that position pos holds no intention (junk, an afterimage, a
// checkpoint), so that the state is after pos.
func (s *State) Skip(pos uint64) error {
	if pos <= s.pos {
		return fmt.Errorf("processor: position %d replayed twice (state is at %d)", pos, s.pos)
	}
	s.pos = pos
	return nil
}

// Apply decides the intention at pos and, if it commits, applies it. An
// error means the state could not read its own tree (a failed node load); the
// state is then unchanged and the caller must not go on past pos.
func (s *State) Apply(pos uint64, in *intention.Intention) (Decision, *Delta, error) {
	if pos <= s.pos {
		return Decision{}, nil, fmt.Errorf("processor: position %d replayed twice (state is at %d)", pos, s.pos)
	}
	d := Decision{Pos: pos, Snapshot: in.Snapshot, Token: in.Token}
	switch {
	case in.Snapshot >= pos:
		d.Outcome, d.Reason = Invalid, fmt.Sprintf("snapshot %d is not before the intention", in.Snapshot)
	case pos-in.Snapshot > s.header.ConflictWindow:
		d.Outcome = TooOld
	default:
		if err := in.Validate(int(s.header.MaxKeySize), int(s.header.MaxValueSize)); err != nil {
			d.Outcome, d.Reason = Invalid, err.Error()
		}
	}
	if d.Outcome == 0 {
		if err := s.check(in, &d); err != nil {
			return Decision{}, nil, err
		}
	}
	if d.Outcome != 0 {
		s.pos = pos
		return d, nil, nil
	}
	delta := s.tree.BeginScratch(pos, len(in.Ops), &s.scratch)
	for i, op := range in.Ops {
		if i%prefetchBlock == 0 && len(in.Ops) > 1 {
			s.prefetchOps(in.Ops[i:])
		}
		var err error
		switch op.Kind {
		case intention.OpPut:
			err = delta.Put(op.Key, op.Value)
		case intention.OpDeleteRange:
			err = s.deleteRange(delta, in.Ops[:i], op)
		default:
			err = delta.Delete(op.Key)
		}
		if err != nil {
			return Decision{}, nil, fmt.Errorf("processor: apply position %d: %w", pos, err)
		}
	}
	if pos > s.header.ConflictWindow {
		if err := delta.DropTombstones(pos - s.header.ConflictWindow); err != nil {
			return Decision{}, nil, fmt.Errorf("processor: apply position %d: %w", pos, err)
		}
	}
	tree, nodes, err := delta.Finish()
	if err != nil {
		return Decision{}, nil, fmt.Errorf("processor: apply position %d: %w", pos, err)
	}
	var bytes int64
	for _, n := range nodes {
		bytes += n.Size()
	}
	s.tree, s.pos = tree, pos
	d.Outcome = Committed
	return d, &Delta{Pos: pos, Tree: tree, Nodes: nodes, Bytes: bytes, Replaced: delta.Replaced(), Epoch: s.epoch}, nil
}

// Cut handles a checkpoint cut at pos: every node of the tree gets a second
// address, (pos, n), n its post-order number (see cowtree.Tree.Cut), so
// that deltas after the cut point only at the cut's image and at later
// deltas. It costs O(1): nothing is copied; the image is written from the
// delta's Tree in the background. Every cut is handled alike, whatever came
// before it, so a node needs no memory of earlier checkpoints to decide the
// same as every other node; a duplicate cut costs one more image, nothing
// else. An error means the root could not be loaded; the state is then
// unchanged.
func (s *State) Cut(pos uint64) (*Delta, error) {
	if pos <= s.pos {
		return nil, fmt.Errorf("processor: position %d replayed twice (state is at %d)", pos, s.pos)
	}
	tree, err := s.tree.Cut(pos)
	if err != nil {
		return nil, fmt.Errorf("processor: checkpoint cut at %d: %w", pos, err)
	}
	nodes, err := tree.Nodes()
	if err != nil {
		return nil, fmt.Errorf("processor: checkpoint cut at %d: %w", pos, err)
	}
	s.tree, s.pos, s.epoch = tree, pos, pos
	return &Delta{Pos: pos, Tree: tree, Checkpoint: true, ImageNodes: nodes, Epoch: pos}, nil
}

// check looks for a write after the snapshot to anything the intention read.
func (s *State) check(in *intention.Intention, d *Decision) error {
	for i, k := range in.Reads {
		if i%prefetchBlock == 0 && len(in.Reads) > 1 {
			s.tree.Prefetch(in.Reads[i:min(i+prefetchBlock, len(in.Reads))])
		}
		n, err := s.tree.KeyWrittenAfter(k, in.Snapshot)
		if err != nil {
			return fmt.Errorf("processor: check position %d: %w", d.Pos, err)
		}
		if n != nil {
			d.Outcome, d.ConflictKey, d.ConflictPos = Conflict, k, n.Pos()
			return nil
		}
	}
	for _, r := range in.Ranges {
		n, err := s.tree.WrittenAfter(r.Lo, r.Hi, in.Snapshot)
		if err != nil {
			return fmt.Errorf("processor: check position %d: %w", d.Pos, err)
		}
		if n != nil {
			d.Outcome, d.ConflictKey, d.ConflictPos = Conflict, n.Key(), n.Pos()
			return nil
		}
	}
	return nil
}

// prefetchBlock is how many keys of an intention are walked down the tree
// together (cowtree.Tree.Prefetch) before they are checked or applied one
// by one: the misses of their paths then overlap. Prefetching changes no
// decision and no afterimage; it only warms the caches.
const prefetchBlock = 16

// prefetchOps prefetches the paths of the keys of the first prefetchBlock
// of ops that name one key.
func (s *State) prefetchOps(ops []intention.Op) {
	var keys [prefetchBlock][]byte
	n := 0
	for _, op := range ops[:min(len(ops), prefetchBlock)] {
		if op.Kind != intention.OpDeleteRange {
			keys[n] = op.Key
			n++
		}
	}
	if n > 1 {
		s.tree.Prefetch(keys[:n])
	}
}
