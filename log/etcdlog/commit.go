package etcdlog

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/cruzlog/cruzdb/log"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// appendReq is one caller's entries, committed together in one transaction.
type appendReq struct {
	ctx   context.Context
	vals  [][]byte // encoded entry values, owned by the request
	data  [][]byte // the data of inline entries (for the cache), aliasing vals
	bytes int
	large *largeEntry // a chunked entry: vals holds its manifest alone
	done  chan appendResult
}

type appendResult struct {
	pos []uint64
	err error
}

// errChunksGone: a large entry's chunks expired before its entry was
// written; the writer writes them again.
var errChunksGone = errors.New("chunks expired before the entry was written")

// errNoNestedResponse: etcd answered a failed transaction without the
// response of the transaction nested in its Else branch, so whether a guess
// landed is unknown.
var errNoNestedResponse = errors.New("etcd answered without the nested transaction's response")

// Append writes data at the next free position. Concurrent appends on one
// Log share etcd transactions.
func (l *Log) Append(ctx context.Context, data []byte) (log.Position, error) {
	if err := l.check(ctx, "append"); err != nil {
		return 0, err
	}
	if len(data) > log.MaxEntrySize {
		return 0, fmt.Errorf("etcdlog: append of %d bytes: %w (max %d)", len(data), log.ErrTooLarge, log.MaxEntrySize)
	}
	if len(data) > l.opts.ChunkSize {
		return l.appendLarge(ctx, data)
	}
	ps, err := l.submit(ctx, l.inlineReq(ctx, [][]byte{data}))
	if err != nil {
		return 0, err
	}
	return log.Position(ps[0]), nil
}

// AppendBatch appends data in order: entries that fit go together in as few
// transactions as the batch limits allow, large ones on their own.
func (l *Log) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	if err := l.check(ctx, "append batch"); err != nil {
		return nil, err
	}
	for i, d := range data {
		if len(d) > log.MaxEntrySize {
			return nil, fmt.Errorf("etcdlog: append batch: entry %d of %d bytes: %w (max %d)", i, len(d), log.ErrTooLarge, log.MaxEntrySize)
		}
	}
	out := make([]log.Position, 0, len(data))
	for i := 0; i < len(data); {
		if len(data[i]) > l.opts.ChunkSize {
			p, err := l.appendLarge(ctx, data[i])
			if err != nil {
				return nil, err
			}
			out = append(out, p)
			i++
			continue
		}
		j, bytes := i, 0
		for j < len(data) && j-i < l.opts.MaxBatchEntries && len(data[j]) <= l.opts.ChunkSize &&
			(j == i || bytes+len(data[j]) <= l.opts.MaxBatchBytes) {
			bytes += len(data[j])
			j++
		}
		ps, err := l.submit(ctx, l.inlineReq(ctx, data[i:j]))
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			out = append(out, log.Position(p))
		}
		i = j
	}
	return out, nil
}

func (l *Log) inlineReq(ctx context.Context, data [][]byte) *appendReq {
	r := &appendReq{ctx: ctx, done: make(chan appendResult, 1)}
	for _, d := range data {
		v := make([]byte, 1+len(d))
		v[0] = kindData
		copy(v[1:], d)
		r.vals = append(r.vals, v)
		r.data = append(r.data, v[1:])
		r.bytes += len(d)
	}
	return r
}

// submit hands r to the committer and waits for its positions.
func (l *Log) submit(ctx context.Context, r *appendReq) ([]uint64, error) {
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		return nil, fmt.Errorf("etcdlog: append: %w", ctx.Err())
	case <-l.ctx.Done():
		return nil, fmt.Errorf("etcdlog: append: %w", log.ErrClosed)
	}
	select {
	case res := <-r.done:
		return res.pos, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("etcdlog: append: outcome unknown: %w", ctx.Err())
	case <-l.ctx.Done():
		return nil, fmt.Errorf("etcdlog: append: outcome unknown: %w", log.ErrClosed)
	}
}

// commitLoop is the node's committer: it gathers the appends waiting and
// writes them in one transaction that compares the meta keys with what this
// node knows of them. One transaction is in flight at a time; appends that
// arrive meanwhile wait for the next one, so batches grow with load.
func (l *Log) commitLoop() {
	defer l.wg.Done()
	var carry *appendReq
	for {
		var batch []*appendReq
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			case <-l.ctx.Done():
				return
			}
		}
		// Let the appenders the last commit released queue their next
		// appends, so that they go in this transaction, not one each.
		runtime.Gosched()
		batch, carry = l.gather(batch)
		if carry == nil {
			batch, carry = l.grow(batch)
		}
		live := batch[:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.done <- appendResult{err: fmt.Errorf("etcdlog: append: %w", err)}
				continue
			}
			live = append(live, r)
		}
		if len(live) > 0 {
			carry = l.commit(live, carry)
		}
	}
}

// joins reports whether r may join a batch of n entries and bytes bytes: a
// large entry goes alone, and a batch stays within MaxBatchEntries and
// MaxBatchBytes.
func (l *Log) joins(r *appendReq, n, bytes int) bool {
	return r.large == nil && n+len(r.vals) <= l.opts.MaxBatchEntries && bytes+r.bytes <= l.opts.MaxBatchBytes
}

// gather adds the appends waiting to batch, within the batch limits; the
// first that does not fit is returned as carry, for the next batch. A
// large entry goes alone.
func (l *Log) gather(batch []*appendReq) ([]*appendReq, *appendReq) {
	n, bytes := 0, 0
	for _, r := range batch {
		if r.large != nil {
			return batch, nil
		}
		n, bytes = n+len(r.vals), bytes+r.bytes
	}
	for n < l.opts.MaxBatchEntries && bytes < l.opts.MaxBatchBytes {
		select {
		case r := <-l.reqs:
			if !l.joins(r, n, bytes) {
				return batch, r
			}
			batch = append(batch, r)
			n, bytes = n+len(r.vals), bytes+r.bytes
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// commit writes the batch's entries at the positions after the tail it
// knows, in one transaction with the tail's new value, and retries at once
// with the meta keys the Else branch returns when another writer got there
// first; a retry takes along the appends that arrived meanwhile (unless
// carry, one that did not fit, is waiting already), so that a node that lost
// a race commits more at once when it wins. It returns the carry.
//
// When this node has lost races lately, the Else branch is not only a read:
// it nests transactions that place the same batch after the tails another
// writer is likely to have set (the tail moves of recent losses, see
// guesser), each compared exactly (the tail's value, the trim and ahead
// keys' revisions), so that a lost race still lands the batch in the same
// round trip. The innermost Else reads the meta keys, as without guesses.
func (l *Log) commit(batch []*appendReq, carry *appendReq) *appendReq {
	reply := func(err error) {
		for _, r := range batch {
			r.done <- appendResult{err: err}
		}
	}
	var vals [][]byte
	var strs []string
	for attempt := 0; ; attempt++ {
		if attempt > 0 && carry == nil && batch[0].large == nil {
			batch, carry = l.gather(batch)
		}
		vals, strs = vals[:0], strs[:0]
		bytes := 0
		for _, r := range batch {
			vals = append(vals, r.vals...)
			for _, v := range r.vals {
				strs = append(strs, string(v))
				bytes += len(v)
			}
		}
		if l.ctx.Err() != nil {
			reply(fmt.Errorf("etcdlog: append: %w", log.ErrClosed))
			return carry
		}
		m := l.snapshot()
		base := m.next()
		pos, next := place(&m, base, len(vals))
		ops := make([]clientv3.Op, 0, len(vals)+2)
		for i, v := range strs {
			ops = append(ops, clientv3.OpPut(l.k.entry(pos[i]), v))
		}
		if le := batch[0].large; le != nil {
			for i := range le.man.chunks() {
				// Detach the chunk from its lease: the entry owns it now.
				// A chunk that expired makes the whole transaction fail.
				ops = append(ops, clientv3.OpPut(l.k.chunk(le.man.id, i), "", clientv3.WithIgnoreValue()))
			}
			ops = append(ops, clientv3.OpPut(l.k.marker(pos[0]), le.man.id))
		}
		ops = append(ops, clientv3.OpPut(l.k.tail(), hex16(next)))

		// Guessed tails, each level within etcd's limits on operations
		// (every nesting level counts against --max-txn-ops) and bytes.
		var tails []uint64
		if batch[0].large == nil {
			per := max(len(vals)+1, 3)
			k := min(l.maxGuesses, nestOps/per-1, l.opts.MaxBatchBytes/max(bytes, 1)-1)
			for _, d := range l.guess.guesses(k) {
				tails = append(tails, base+d)
			}
		}
		l.guess.txns++
		gpos := make([][]uint64, len(tails))
		gnext := make([]uint64, len(tails))
		els := []clientv3.Op{clientv3.OpGet(l.k.meta(), clientv3.WithPrefix())}
		for i := len(tails) - 1; i >= 0; i-- {
			gpos[i], gnext[i] = place(&m, tails[i], len(vals))
			gops := make([]clientv3.Op, 0, len(vals)+1)
			for j, v := range strs {
				gops = append(gops, clientv3.OpPut(l.k.entry(gpos[i][j]), v))
			}
			gops = append(gops, clientv3.OpPut(l.k.tail(), hex16(gnext[i])))
			cmps := l.metaCmps(&m) // the tail's compare first: by value here
			cmps[0] = clientv3.Compare(clientv3.Value(l.k.tail()), "=", hex16(tails[i]))
			els = []clientv3.Op{clientv3.OpTxn(cmps, gops, els)}
		}

		l.txns.Add(1)
		if len(tails) > 0 {
			l.nested.Add(1)
		}
		if l.beforeTxn != nil {
			l.beforeTxn()
		}
		// A member cut off from its leader answers at once instead of
		// holding the batch until the timeout.
		ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(l.ctx), l.opts.RequestTimeout)
		sent := time.Now()
		resp, err := l.cli.Txn(ctx).If(l.metaCmps(&m)...).Then(ops...).Else(els...).Commit()
		cancel()
		if err == nil {
			l.batches.roundTrip(time.Since(sent))
		}
		switch {
		case err != nil && batch[0].large != nil && isKeyNotFound(err):
			reply(errChunksGone)
			return carry
		case err != nil && l.ctx.Err() != nil:
			reply(fmt.Errorf("etcdlog: append: outcome unknown: %w", log.ErrClosed))
			return carry
		case err != nil:
			reply(fmt.Errorf("etcdlog: append: outcome unknown: %w", err))
			return carry
		case resp.Succeeded:
			l.landed(batch, pos, next, resp.Header.Revision)
			return carry
		}
		// Walk down the guesses to the one that landed, or to the read.
		cur := (*etcdserverpb.TxnResponse)(resp)
		won := -1
		for i := range tails {
			tr := cur.Responses[0].GetResponseTxn()
			if tr == nil {
				reply(fmt.Errorf("etcdlog: append: outcome unknown: %w", errNoNestedResponse))
				return carry
			}
			if tr.Succeeded {
				won = i
				break
			}
			cur = tr
		}
		if won >= 0 {
			l.nestedWon.Add(1)
			l.guess.record(tails[won] - base)
			l.landed(batch, gpos[won], gnext[won], resp.Header.Revision)
			return carry
		}
		l.lost.Add(1)
		if err := l.applyMeta(cur.Responses[0].GetResponseRange().Kvs); err != nil {
			reply(fmt.Errorf("etcdlog: append: %w", err))
			return carry
		}
		if now := l.snapshot(); now.trimRev == m.trimRev && now.aheadRev == m.aheadRev && now.tail > base {
			l.guess.record(now.tail - base)
		}
	}
}

// Limits of the guesses a transaction carries: at most maxGuesses, and
// every nesting level's operations counted against nestOps, etcd's default
// --max-txn-ops (a server configured lower than its default would reject
// such a transaction; MaxBatchEntries must stay below the limit anyway).
const (
	maxGuesses = 1
	nestOps    = 128
)

// place returns the positions of n entries appended at tail t (skipping
// positions filled ahead of the tail) and the tail after them.
func place(m *meta, t uint64, n int) ([]uint64, uint64) {
	pos := make([]uint64, n)
	next := t
	for i := range pos {
		for m.junkAhead(next) {
			next++
		}
		pos[i] = next
		next++
	}
	return pos, next
}

// landed records a batch written at pos with the tail next at rev, and
// answers its appends.
func (l *Log) landed(batch []*appendReq, pos []uint64, next uint64, rev int64) {
	l.noteTail(next, rev)
	l.batches.landed(len(pos))
	i := 0
	for _, r := range batch {
		ps := pos[i : i+len(r.vals)]
		for j, d := range r.data {
			l.cache.put(ps[j], d)
		}
		i += len(r.vals)
		r.done <- appendResult{pos: ps}
	}
}
