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
)

// Op is one write of an intention. Ops are applied in order; a later op on the
// same key overrides an earlier one.
type Op struct {
	Kind  OpKind
	Key   []byte
	Value []byte // nil for OpDelete
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
