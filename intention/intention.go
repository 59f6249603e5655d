// Package intention defines the intention record: what a transaction read and
// what it wrote, as appended to the shared log. The transaction processor
// decides commit or abort for each intention in log order; this package only
// describes, encodes, decodes and validates the record, and applies nothing.
package intention

// OpKind is the kind of a write operation.
type OpKind uint8

const (
	// OpPut sets a key to a value.
	OpPut OpKind = 1
	// OpDelete removes a key (the tree keeps a tombstone for conflict checks).
	OpDelete OpKind = 2
	// OpDeleteRange removes every key in [Key, Value) (a nil Value: no
	// upper bound) that exists when the op is applied. The processor
	// applies it as one tombstone per such key, found in its own tree, so
	// a transaction that read any of them conflicts with it. It costs the
	// processor work in the number of keys removed, and the log one op.
	OpDeleteRange OpKind = 3
)

// Op is one write of an intention. Ops are applied in order; a later op on the
// same key overrides an earlier one.
type Op struct {
	Kind  OpKind
	Key   []byte
	Value []byte // nil for OpDelete; the range's end for OpDeleteRange
}

// Range is a scanned key range [Lo, Hi). A nil Lo is unbounded below, a nil
// Hi unbounded above.
type Range struct {
	Lo, Hi []byte
}

// Intention is a transaction's record in the log.
type Intention struct {
	// Snapshot is the log position of the state the transaction read.
	Snapshot uint64
	// Token is a random number that lets a client recognise its own entry.
	Token uint64
	// Reads are the point keys the transaction read (found or not).
	Reads [][]byte
	// Ranges are the key ranges the transaction scanned.
	Ranges []Range
	// Ops are the writes, in order.
	Ops []Op
}
