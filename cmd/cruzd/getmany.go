package main

import (
	"sync/atomic"

	"github.com/cruzlog/cruzdb"
)

// getManyScratch is a connection's scratch for looking up a run of GETs
// with one Txn.GetMany (runReads).
type getManyScratch struct {
	kbuf []byte   // the metadata keys, back to back
	keys [][]byte // slices of kbuf
	vals [][]byte
	vbuf []byte // the values, back to back (Txn.GetManyAppend)
}

// keepValueScratch is the largest value buffer (getManyScratch.vbuf) a
// connection keeps between runs of GETs: 16 values of up to 2 KiB.
const keepValueScratch = 32 << 10

// getManyRuns counts the runs of GETs looked up with one GetMany (tests
// check that pipelined GETs take that path).
var getManyRuns atomic.Int64

// runReads runs a read-only run of point commands in tx. Each run of two
// or more consecutive GETs is looked up with one Txn.GetMany, whose walk of
// the tree overlaps the keys' cache misses; a GET's reply is taken from it
// only for a plain string without an expiry (or a missing key: null).
// Anything else (another type: WRONGTYPE; an expiry, which reads the clock
// and may expire the key; metadata that does not decode; a GetMany error)
// runs the GET as the unbatched path does, so every reply is the one cmdGet
// would give.
func (c *conn) runReads(tx *cruzdb.Txn, batch [][][]byte, specs []*cmdSpec) {
	for k := 0; k < len(batch); {
		j := k
		for j < len(batch) && specs[j].name == "get" {
			j++
		}
		if j-k < 2 {
			specs[k].run(c, tx, batch[k])
			k++
			continue
		}
		c.getRun(tx, batch[k:j], specs[k:j])
		k = j
	}
}

// getRun replies to a run of GETs (arity checked) with one GetMany, the
// values appended to the connection's value buffer (GetManyAppend): a run
// allocates nothing once the buffers have grown to fit it.
func (c *conn) getRun(tx *cruzdb.Txn, batch [][][]byte, specs []*cmdSpec) {
	c.lookupStrings(tx, len(batch), func(i int) []byte { return batch[i][1] },
		func(i int, v []byte, plain bool) {
			switch {
			case !plain:
				specs[i].run(c, tx, batch[i])
			case v == nil:
				c.w.Null()
			default:
				c.w.Bulk(v)
			}
		})
}

// lookupStrings looks up n string keys (key(i) is the i-th) with one
// Txn.GetManyAppend and calls reply(i, value, plain) for each, in order.
// plain says value is what a GET replies: a plain string without an expiry
// (value: its bytes, valid only during the call) or a missing key (value:
// nil). Otherwise the caller takes the unbatched path for key i: another
// type, an expiry (which reads the clock and may expire the key), metadata
// that does not decode, or a GetMany error (a key over the size limit, a
// node that cannot be read: then for every key).
func (c *conn) lookupStrings(tx *cruzdb.Txn, n int, key func(int) []byte, reply func(i int, value []byte, plain bool)) {
	g := &c.gm
	g.kbuf = g.kbuf[:0]
	for i := range n {
		g.kbuf = append(append(g.kbuf, metaPrefix), key(i)...)
	}
	g.keys = g.keys[:0]
	off := 0
	for i := range n {
		end := off + 1 + len(key(i))
		g.keys = append(g.keys, g.kbuf[off:end:end])
		off = end
	}
	if cap(g.vals) < n {
		g.vals = make([][]byte, n)
	}
	vals := g.vals[:n]
	getManyRuns.Add(1)
	var err error
	if g.vbuf, err = tx.GetManyAppend(g.vbuf[:0], g.keys, vals); err != nil {
		for i := range n {
			reply(i, nil, false)
		}
	} else {
		for i, v := range vals {
			if v == nil {
				reply(i, nil, true)
				continue
			}
			m, err := decodeMeta(v)
			if err != nil || m.typ != typeString || m.expireAt != 0 {
				reply(i, nil, false)
				continue
			}
			reply(i, m.value, true)
		}
	}
	clear(vals) // the values are garbage once replied
	clear(g.keys)
	if cap(g.kbuf) > keepScratch {
		g.kbuf = nil
	}
	if cap(g.vbuf) > keepValueScratch {
		g.vbuf = nil
	}
	if cap(g.keys) > 1024 {
		g.keys, g.vals = nil, nil
	}
}
