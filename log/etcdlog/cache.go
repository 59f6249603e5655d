package etcdlog

import "sync"

// cache keeps the newest inline entries this node has appended or the watch
// has delivered, so that replay reads them without a round trip. Entries
// are write-once, so a cached entry never goes stale; positions below the
// trim point are answered by etcd, not by the cache. Eviction is oldest
// position first (replay reads forward).
type cache struct {
	mu    sync.Mutex
	limit int // bytes; <= 0: off
	bytes int
	m     map[uint64][]byte
	order []uint64 // insertion order, for eviction
}

func (c *cache) get(p uint64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[p]
	return d, ok
}

// put keeps data (which the cache now owns) for p.
func (c *cache) put(p uint64, data []byte) {
	if c.limit <= 0 || len(data) > c.limit/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[uint64][]byte)
	}
	if _, ok := c.m[p]; ok {
		return
	}
	c.m[p] = data
	c.order = append(c.order, p)
	c.bytes += len(data) + 64
	for c.bytes > c.limit && len(c.order) > 0 {
		q := c.order[0]
		c.order = c.order[1:]
		if d, ok := c.m[q]; ok {
			c.bytes -= len(d) + 64
			delete(c.m, q)
		}
	}
	if cap(c.order) > 4*len(c.order)+1024 {
		c.order = append([]uint64(nil), c.order...)
	}
}

func (c *cache) drop(p uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.m[p]; ok {
		c.bytes -= len(d) + 64
		delete(c.m, p)
	}
}

func (c *cache) dropBelow(p uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, d := range c.m {
		if q < p {
			c.bytes -= len(d) + 64
			delete(c.m, q)
		}
	}
}
