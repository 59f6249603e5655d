package intention

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// ErrInvalid marks an intention that decodes but breaks a rule of Validate.
// The processor aborts such an intention (deterministically: every node
// applies the same rules with the header's limits); it is not corruption.
var ErrInvalid = errors.New("intention: invalid")

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpDeleteRange:
		return "delete-range"
	}
	return "opkind(" + strconv.Itoa(int(k)) + ")"
}

// Known reports whether k is an op kind this version understands.
func (k OpKind) Known() bool { return k == OpPut || k == OpDelete || k == OpDeleteRange }

// Empty reports whether r contains no key: Lo and Hi both non-nil and
// Lo >= Hi. An empty non-nil Hi makes every range empty, since the empty key
// is the smallest.
func (r Range) Empty() bool {
	switch {
	case r.Hi == nil:
		return false
	case r.Lo == nil:
		return len(r.Hi) == 0
	}
	return bytes.Compare(r.Lo, r.Hi) >= 0
}

// Contains reports whether key lies in [Lo, Hi), a nil bound being open.
func (r Range) Contains(key []byte) bool {
	if r.Lo != nil && bytes.Compare(key, r.Lo) < 0 {
		return false
	}
	return r.Hi == nil || bytes.Compare(key, r.Hi) < 0
}

// Validate checks in against the rules every node applies before deciding
// it, with the header's key and value size limits:
//
//   - at least one op (read-only transactions never reach the log);
//   - every op kind is OpPut, OpDelete or OpDeleteRange;
//   - every op key is non-empty and at most maxKey bytes;
//   - a put's value is at most maxValue bytes (empty, or nil, is a valid
//     value);
//   - a delete's value is nil;
//   - a range delete's end (its value) is nil or after its start (its key);
//   - every read key is non-empty.
//
// Read keys and range bounds are not held to maxKey: a key that can never be
// written can never conflict. A range with Lo >= Hi (both non-nil) is empty
// (see Range.Empty): it is allowed and can never conflict, so a client need
// not special-case an inverted scan. Duplicate keys are allowed among reads
// and among ops (a later op overrides an earlier one).
//
// An error wraps ErrInvalid and says which rule broke first, in the order
// ops, reads.
func (in *Intention) Validate(maxKey, maxValue int) error {
	if len(in.Ops) == 0 {
		return fmt.Errorf("%w: no ops", ErrInvalid)
	}
	for i := range in.Ops {
		op := &in.Ops[i]
		switch {
		case !op.Kind.Known():
			return fmt.Errorf("%w: op %d: unknown kind %d", ErrInvalid, i, op.Kind)
		case len(op.Key) == 0:
			return fmt.Errorf("%w: op %d: empty key", ErrInvalid, i)
		case len(op.Key) > maxKey:
			return fmt.Errorf("%w: op %d: key of %d bytes exceeds the limit of %d", ErrInvalid, i, len(op.Key), maxKey)
		case op.Kind == OpPut && len(op.Value) > maxValue:
			return fmt.Errorf("%w: op %d: value of %d bytes exceeds the limit of %d", ErrInvalid, i, len(op.Value), maxValue)
		case op.Kind == OpDelete && op.Value != nil:
			return fmt.Errorf("%w: op %d: delete with a value", ErrInvalid, i)
		case op.Kind == OpDeleteRange && op.Value != nil && bytes.Compare(op.Key, op.Value) >= 0:
			return fmt.Errorf("%w: op %d: range delete of an empty range", ErrInvalid, i)
		}
	}
	for i, k := range in.Reads {
		if len(k) == 0 {
			return fmt.Errorf("%w: read %d: empty key", ErrInvalid, i)
		}
	}
	return nil
}
