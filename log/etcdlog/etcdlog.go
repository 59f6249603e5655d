package etcdlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/log"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrCorrupt: a key of the log holds a value this package never writes, or
// a large entry's chunks are missing although the entry is not trimmed.
var ErrCorrupt = fmt.Errorf("etcdlog: corrupt log: %w", log.ErrCorrupt)

// Log is a log.Log kept in etcd. Every Log opened with the same client
// cluster, KeyPrefix and name is the same log. It also implements
// log.BatchAppender, log.RangeReader and log.TailWaiter.
type Log struct {
	cli  *clientv3.Client
	name string
	k    keys
	opts Options

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reqs    chan *appendReq
	trimmer chan struct{} // kicks the background trimmer

	mu      sync.Mutex
	closed  bool
	m       meta          // what this node knows of the meta keys
	changed chan struct{} // closed and replaced whenever m.next() grows
	cache   cache
	seenRev int64 // the newest revision the watch has delivered

	txns, lost atomic.Int64 // append transactions sent, and lost to another writer
	nested     atomic.Int64 // append transactions sent with guesses in their Else branch
	nestedWon  atomic.Int64 // ... that lost the tail but landed by a guess
	misses     atomic.Int64 // Reads the cache could not answer
	guess      guesser      // the committer's
	maxGuesses int          // guesses per transaction: maxGuesses (tests and benchmarks change it)
	batches    grower       // the committer's
	growWaits  atomic.Int64 // batches the committer waited to grow
	growWaited atomic.Int64 // nanoseconds it waited
	// maxGrowWait bounds the committer's wait for a fuller batch: maxGrowWait
	// (tests and benchmarks change it; 0 turns it off).
	maxGrowWait time.Duration

	// onGrowWait, when set (tests), is called by the committer when it
	// starts waiting for a batch to grow.
	onGrowWait func()

	// beforeTxn, when set (tests), is called by the committer just before
	// it sends an append transaction.
	beforeTxn func()

	// afterChunks, when set (tests), is called with the chunks' lease after
	// a large entry's chunks are written and before the entry is; an error
	// from it abandons the append as a writer dying there would.
	afterChunks func(clientv3.LeaseID) error
}

var (
	_ log.Log           = (*Log)(nil)
	_ log.BatchAppender = (*Log)(nil)
	_ log.RangeReader   = (*Log)(nil)
	_ log.TailWaiter    = (*Log)(nil)
)

// Open opens the log called name on the etcd cluster cli talks to, creating
// it (empty) if it does not exist yet. The caller owns cli: configure TLS and
// etcd authentication on it, and close it after closing the Log. name is 1 to
// 200 bytes without '/' or control characters.
func Open(ctx context.Context, cli *clientv3.Client, name string, opts *Options) (*Log, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil etcd client", ErrBadOptions)
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{
		cli:     cli,
		name:    name,
		k:       keys{prefix: o.KeyPrefix + name + "/"},
		opts:    o,
		reqs:    make(chan *appendReq, 1024),
		trimmer: make(chan struct{}, 1),
		changed: make(chan struct{}),
	}
	l.cache.limit = o.CacheBytes
	l.maxGuesses = maxGuesses
	l.maxGrowWait = maxGrowWait
	rev, err := l.refreshMeta(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcdlog: open %q: %w", name, err)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(3)
	go l.watch(rev)
	go l.commitLoop()
	go l.trimLoop()
	l.kickTrimmer()
	return l, nil
}

func checkName(name string) error {
	if name == "" || len(name) > 200 {
		return fmt.Errorf("%w: log name of %d bytes (want 1 to 200)", ErrBadOptions, len(name))
	}
	for _, r := range name {
		if r == '/' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: log name %q contains %q", ErrBadOptions, name, r)
		}
	}
	return nil
}

// Name returns the log's name.
func (l *Log) Name() string { return l.name }

// Close stops the log's goroutines. It does not close the etcd client.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("etcdlog: close %q: %w", l.name, log.ErrClosed)
	}
	l.closed = true
	close(l.changed) // wake WaitTail callers; they see closed
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
	return nil
}

// check returns ctx's error or ErrClosed, wrapped with op.
func (l *Log) check(ctx context.Context, op string) error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return fmt.Errorf("etcdlog: %s: %w", op, log.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("etcdlog: %s: %w", op, err)
	}
	return nil
}

// callErr wraps an error of an etcd call made for a caller, so that a
// context that ended, or a Close meanwhile, reads as such.
func (l *Log) callErr(ctx context.Context, op string, err error) error {
	if err := l.check(ctx, op); err != nil {
		return err
	}
	return fmt.Errorf("etcdlog: %s: %w", op, err)
}

// callCtx ends when ctx ends or the log closes.
func (l *Log) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(l.ctx, cancel)
	return c, func() { stop(); cancel() }
}

// refreshMeta reads the meta keys and returns the revision read at.
func (l *Log) refreshMeta(ctx context.Context) (int64, error) {
	resp, err := l.cli.Get(ctx, l.k.meta(), clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	if err := l.applyMeta(resp.Kvs); err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// applyMeta merges meta key values into what the log knows.
func (l *Log) applyMeta(kvs []*mvccKV) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	before := l.m.next()
	for _, kv := range kvs {
		if _, err := l.m.set(l.k, string(kv.Key), kv.Value, kv.ModRevision); err != nil {
			return fmt.Errorf("%w: key %s: %v", ErrCorrupt, kv.Key, err)
		}
	}
	if l.m.next() > before {
		l.wakeLocked()
	}
	return nil
}

// wakeLocked wakes every WaitTail caller. l.mu is held.
func (l *Log) wakeLocked() {
	if l.closed {
		return
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Log) snapshot() meta {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.m
	m.ahead = append([]uint64(nil), m.ahead...)
	return m
}

// metaCmps are the compares of every write: the meta keys are as seen.
func (l *Log) metaCmps(m *meta) []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(l.k.tail()), "=", m.tailRev),
		clientv3.Compare(clientv3.ModRevision(l.k.trim()), "=", m.trimRev),
		clientv3.Compare(clientv3.ModRevision(l.k.ahead()), "=", m.aheadRev),
	}
}

// Tail returns the next position to be assigned, read from etcd.
func (l *Log) Tail(ctx context.Context) (log.Position, error) {
	if err := l.check(ctx, "tail"); err != nil {
		return 0, err
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	if _, err := l.refreshMeta(cctx); err != nil {
		return 0, l.callErr(ctx, "tail", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return log.Position(l.m.next()), nil
}

// WaitTail implements log.TailWaiter: it returns once this node has seen
// the tail pass after, from its own appends, the watch on the log's keys,
// or a Tail call.
func (l *Log) WaitTail(ctx context.Context, after log.Position) (log.Position, error) {
	for {
		l.mu.Lock()
		closed, next, ch := l.closed, l.m.next(), l.changed
		l.mu.Unlock()
		if closed {
			return 0, fmt.Errorf("etcdlog: wait for the tail past %d: %w", after, log.ErrClosed)
		}
		if next > uint64(after) {
			return log.Position(next), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("etcdlog: wait for the tail past %d: %w", after, ctx.Err())
		}
	}
}

// Read returns the entry at pos.
func (l *Log) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	op := fmt.Sprintf("read %d", pos)
	if err := l.check(ctx, op); err != nil {
		return nil, err
	}
	if data, ok, err := l.cached(uint64(pos)); ok || err != nil {
		if err != nil {
			return nil, fmt.Errorf("etcdlog: %s: %w", op, err)
		}
		return data, nil
	}
	l.misses.Add(1)
	v, err := l.readValue(ctx, uint64(pos), op)
	if err != nil {
		return nil, err
	}
	if v.kind == kindChunked {
		return l.readChunks(ctx, uint64(pos), v.man, 0, v.man.size, op)
	}
	l.cache.put(uint64(pos), v.data)
	return append([]byte(nil), v.data...), nil
}

// cached answers a read from the cache: ok is false on a miss.
func (l *Log) cached(p uint64) (data []byte, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p < l.m.trim {
		return nil, false, nil // let etcd answer: it knows about the trim
	}
	d, ok := l.cache.get(p)
	if !ok {
		return nil, false, nil
	}
	return append([]byte(nil), d...), true, nil
}

// readValue reads and decodes the entry at p; a missing one is an error
// wrapping ErrNotWritten or ErrTrimmed, junk one wrapping ErrFilled.
func (l *Log) readValue(ctx context.Context, p uint64, op string) (value, error) {
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	resp, err := l.cli.Txn(cctx).Then(
		clientv3.OpGet(l.k.entry(p)),
		clientv3.OpGet(l.k.trim()),
	).Commit()
	if err != nil {
		return value{}, l.callErr(ctx, op, err)
	}
	ent := resp.Responses[0].GetResponseRange().Kvs
	if err := l.applyMeta(resp.Responses[1].GetResponseRange().Kvs); err != nil {
		return value{}, fmt.Errorf("etcdlog: %s: %w", op, err)
	}
	trim := l.trimPoint()
	if p < trim {
		return value{}, fmt.Errorf("etcdlog: %s: %w", op, log.ErrTrimmed)
	}
	if len(ent) == 0 {
		return value{}, fmt.Errorf("etcdlog: %s: %w", op, log.ErrNotWritten)
	}
	v, err := decodeValue(ent[0].Value)
	if err != nil {
		return value{}, fmt.Errorf("etcdlog: %s: %w: %v", op, ErrCorrupt, err)
	}
	if v.kind == kindJunk {
		return value{}, fmt.Errorf("etcdlog: %s: %w", op, log.ErrFilled)
	}
	return v, nil
}

func (l *Log) trimPoint() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.trim
}

// Fill makes pos junk unless it holds data. At or beyond the tail it puts
// the junk in the transaction that checks the tail (moving the tail past pos
// when pos is the tail, else recording pos in the ahead key that appenders
// skip); below the tail, where no hole ever stays in a log only this
// package writes, it puts junk where nothing is, compared in the same
// transaction.
func (l *Log) Fill(ctx context.Context, pos log.Position) error {
	op := fmt.Sprintf("fill %d", pos)
	if err := l.check(ctx, op); err != nil {
		return err
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	p := uint64(pos)
	ek := l.k.entry(p)
	gets := []clientv3.Op{clientv3.OpGet(l.k.meta(), clientv3.WithPrefix()), clientv3.OpGet(ek)}
	// Start from a fresh read of the entry and the meta keys; a lost
	// compare reads them again in its Else branch.
	resp, err := l.cli.Txn(cctx).Then(gets...).Commit()
	for {
		if err != nil {
			return l.callErr(ctx, op, err)
		}
		if err := l.applyMeta(resp.Responses[0].GetResponseRange().Kvs); err != nil {
			return fmt.Errorf("etcdlog: %s: %w", op, err)
		}
		m := l.snapshot()
		if p < m.trim {
			return nil // trimmed: idempotent
		}
		if ent := resp.Responses[1].GetResponseRange().Kvs; len(ent) > 0 {
			v, err := decodeValue(ent[0].Value)
			if err != nil {
				return fmt.Errorf("etcdlog: %s: %w: %v", op, ErrCorrupt, err)
			}
			if v.kind == kindJunk {
				return nil
			}
			return fmt.Errorf("etcdlog: %s: %w", op, log.ErrWritten)
		}
		all := l.metaCmps(&m)
		cmps := append(all, clientv3.Compare(clientv3.CreateRevision(ek), "=", 0))
		puts := []clientv3.Op{clientv3.OpPut(ek, string([]byte{kindJunk}))}
		switch {
		case p < m.next():
			// A hole: only the entry and the trim point matter.
			cmps = []clientv3.Cmp{all[1], clientv3.Compare(clientv3.CreateRevision(ek), "=", 0)}
		case p == m.next():
			puts = append(puts, clientv3.OpPut(l.k.tail(), hex16(p+1)))
		default:
			var ahead []uint64
			for _, q := range m.ahead {
				if q >= m.next() {
					ahead = append(ahead, q)
				}
			}
			puts = append(puts, clientv3.OpPut(l.k.ahead(), encodeAhead(insertSorted(ahead, p))))
		}
		resp, err = l.cli.Txn(cctx).If(cmps...).Then(puts...).Else(gets...).Commit()
		if err == nil && resp.Succeeded {
			if p == m.next() {
				l.noteTail(p+1, resp.Header.Revision)
			}
			return nil
		}
	}
}

func insertSorted(s []uint64, p uint64) []uint64 {
	i := 0
	for i < len(s) && s[i] < p {
		i++
	}
	if i < len(s) && s[i] == p {
		return s
	}
	s = append(s, 0)
	copy(s[i+1:], s[i:])
	s[i] = p
	return s
}

// noteTail records a tail this node wrote at rev.
func (l *Log) noteTail(t uint64, rev int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rev > l.m.tailRev {
		before := l.m.next()
		l.m.tail, l.m.tailRev = t, rev
		if l.m.next() > before {
			l.wakeLocked()
		}
	}
}

// Trim makes every position below pos read ErrTrimmed. It raises the trim
// key, which every write compares, and leaves deleting the entries (and
// compacting etcd's history) to a background goroutine.
func (l *Log) Trim(ctx context.Context, pos log.Position) error {
	op := fmt.Sprintf("trim %d", pos)
	if err := l.check(ctx, op); err != nil {
		return err
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	if _, err := l.refreshMeta(cctx); err != nil {
		return l.callErr(ctx, op, err)
	}
	for {
		m := l.snapshot()
		if uint64(pos) <= m.trim {
			l.kickTrimmer()
			return nil
		}
		resp, err := l.cli.Txn(cctx).
			If(clientv3.Compare(clientv3.ModRevision(l.k.trim()), "=", m.trimRev)).
			Then(clientv3.OpPut(l.k.trim(), hex16(uint64(pos)))).
			Else(clientv3.OpGet(l.k.trim())).Commit()
		if err != nil {
			return l.callErr(ctx, op, err)
		}
		if resp.Succeeded {
			l.applyMeta([]*mvccKV{{Key: []byte(l.k.trim()), Value: []byte(hex16(uint64(pos))), ModRevision: resp.Header.Revision}})
			l.mu.Lock()
			l.cache.dropBelow(uint64(pos))
			l.mu.Unlock()
			l.kickTrimmer()
			return nil
		}
		if err := l.applyMeta(resp.Responses[0].GetResponseRange().Kvs); err != nil {
			return fmt.Errorf("etcdlog: %s: %w", op, err)
		}
	}
}

func isKeyNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrKeyNotFound)
}

type (
	mvccKV    = mvccpb.KeyValue
	mvccRange = etcdserverpb.RangeResponse
)

// Stats are counters of one Log since Open.
type Stats struct {
	// Txns is how many append transactions this Log sent; Lost how many of
	// them found that another writer had moved the tail and landed nothing
	// (they were retried).
	Txns, Lost int64
	// Nested is how many append transactions carried guesses of the tail
	// another writer set (nested transactions in the Else branch);
	// NestedWon how many of them lost the race for the tail they knew but
	// landed by a guess, in the same round trip.
	Nested, NestedWon int64
	// GrowWaits is how many batches the committer held back for more
	// appends because this node shares the log (it lost a race for the
	// tail lately) and the batch was smaller than its recent ones.
	GrowWaits int64
	// GrowWaited is the time those waits took in all.
	GrowWaited time.Duration
	// CacheMisses is how many Reads went to etcd because the entry was not
	// in the cache (not appended by this node, not delivered by the watch
	// yet, evicted, or trimmed).
	CacheMisses int64
}

// Stats returns the Log's counters.
func (l *Log) Stats() Stats {
	return Stats{Txns: l.txns.Load(), Lost: l.lost.Load(), Nested: l.nested.Load(), NestedWon: l.nestedWon.Load(),
		GrowWaits: l.growWaits.Load(), GrowWaited: time.Duration(l.growWaited.Load()), CacheMisses: l.misses.Load()}
}
