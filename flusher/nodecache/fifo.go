package nodecache

import (
	"fmt"
	"sync"
)

// FIFO is a map from log positions to T bounded by the total weight of its
// entries (each weighs 1 unless a weight function says otherwise): the
// oldest entry inserted is dropped first, but the newest always stays, and
// a put over an existing entry is ignored (it neither changes nor
// refreshes it). Safe for concurrent use.
type FIFO[T any] struct {
	mu     sync.RWMutex
	m      map[uint64]T
	order  []uint64 // insertion order, for dropping the oldest
	head   int
	weight func(T) int64 // nil: 1 an entry
	total  int64
	limit  int64
}

// NewFIFO returns a FIFO of at most limit entries.
func NewFIFO[T any](limit int) *FIFO[T] { return &FIFO[T]{m: make(map[uint64]T), limit: int64(limit)} }

// NewWeightedFIFO returns a FIFO whose entries weigh what weight says, at
// most limit in all.
func NewWeightedFIFO[T any](limit int64, weight func(T) int64) *FIFO[T] {
	return &FIFO[T]{m: make(map[uint64]T), limit: limit, weight: weight}
}

func (x *FIFO[T]) weigh(v T) int64 {
	if x.weight == nil {
		return 1
	}
	return x.weight(v)
}

// Get returns the entry at pos.
func (x *FIFO[T]) Get(pos uint64) (T, bool) {
	x.mu.RLock()
	v, ok := x.m[pos]
	x.mu.RUnlock()
	return v, ok
}

// Put adds v at pos, dropping the oldest entries over the limit.
func (x *FIFO[T]) Put(pos uint64, v T) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.m[pos]; ok {
		return
	}
	x.m[pos] = v
	x.order = append(x.order, pos)
	x.total += x.weigh(v)
	for x.total > x.limit && len(x.order)-x.head > 1 {
		old := x.order[x.head]
		x.total -= x.weigh(x.m[old])
		delete(x.m, old)
		x.head++
	}
	if x.head > len(x.order)/2 && x.head > 1024 {
		x.order = append(x.order[:0], x.order[x.head:]...)
		x.head = 0
	}
}

// Len returns the number of entries.
func (x *FIFO[T]) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.m)
}

// Weight returns the total weight of the entries and the limit.
func (x *FIFO[T]) Weight() (total, limit int64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.total, x.limit
}

// Check verifies the bookkeeping: one order slot per entry, and a total
// that is the sum of the entries' weights.
func (x *FIFO[T]) Check() error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.m) != len(x.order)-x.head {
		return fmt.Errorf("nodecache: fifo holds %d entries, %d in order", len(x.m), len(x.order)-x.head)
	}
	var sum int64
	for _, v := range x.m {
		sum += x.weigh(v)
	}
	if sum != x.total {
		return fmt.Errorf("nodecache: fifo counts %d, its entries weigh %d", x.total, sum)
	}
	return nil
}
