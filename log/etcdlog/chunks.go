package etcdlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cruzlog/cruzdb/log"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
)

// largeEntry is an entry written as chunks.
type largeEntry struct {
	man manifest
}

// chunkAttempts bounds how often a large append starts over because its
// chunks expired before its entry was written.
const chunkAttempts = 3

// appendLarge writes data's chunks under a fresh lease, then the entry
// naming them through the committer, whose transaction detaches the chunks
// from the lease. A writer that dies in between leaves chunks that nothing
// names, and etcd deletes them when the lease expires.
func (l *Log) appendLarge(ctx context.Context, data []byte) (log.Position, error) {
	for attempt := 1; ; attempt++ {
		p, err := l.appendLargeOnce(ctx, data)
		if errors.Is(err, errChunksGone) && attempt < chunkAttempts {
			continue
		}
		if errors.Is(err, errChunksGone) {
			err = fmt.Errorf("etcdlog: append of %d bytes: %w (ChunkLeaseTTL %v)", len(data), err, l.opts.ChunkLeaseTTL)
		}
		return p, err
	}
}

func (l *Log) appendLargeOnce(ctx context.Context, data []byte) (log.Position, error) {
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return 0, fmt.Errorf("etcdlog: append: chunk id: %w", err)
	}
	man := manifest{id: hex.EncodeToString(raw[:]), size: len(data), chunkSize: l.opts.ChunkSize}
	ttl := int64((l.opts.ChunkLeaseTTL + time.Second - 1) / time.Second)
	lease, err := l.cli.Grant(cctx, ttl)
	if err != nil {
		return 0, l.callErr(ctx, "append: grant chunk lease", err)
	}
	g, gctx := errgroup.WithContext(cctx)
	g.SetLimit(4)
	for i := range man.chunks() {
		chunk := data[i*man.chunkSize : min((i+1)*man.chunkSize, len(data))]
		g.Go(func() error {
			_, err := l.cli.Put(gctx, l.k.chunk(man.id, i), string(chunk), clientv3.WithLease(lease.ID))
			return err
		})
	}
	err = g.Wait()
	if err == nil && l.afterChunks != nil {
		if err := l.afterChunks(lease.ID); err != nil {
			return 0, err // as if this writer died here: the lease stays
		}
	}
	if err == nil {
		r := &appendReq{ctx: ctx, vals: [][]byte{encodeManifest(man)}, large: &largeEntry{man: man}, done: make(chan appendResult, 1)}
		var ps []uint64
		ps, err = l.submit(ctx, r)
		if err == nil {
			l.revoke(lease.ID)
			return log.Position(ps[0]), nil
		}
		if errors.Is(err, errChunksGone) {
			return 0, err
		}
	}
	// Revoking deletes the chunks that the entry's transaction did not
	// detach; if it did (an ambiguous failure), they stay with the entry.
	l.revoke(lease.ID)
	return 0, l.callErr(ctx, fmt.Sprintf("append of %d bytes", len(data)), err)
}

func (l *Log) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.RequestTimeout)
	defer cancel()
	_, _ = l.cli.Revoke(ctx, id) // best effort: the lease expires anyway
}

// chunksPerGet bounds the bytes one response carries.
const chunksPerGet = 4

// readChunks returns bytes [off, off+n) of the large entry at p, which
// must lie within it, reading only the chunks that hold them.
func (l *Log) readChunks(ctx context.Context, p uint64, man manifest, off, n int, op string) ([]byte, error) {
	out := make([]byte, 0, n)
	if n == 0 {
		return out, nil
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	first, last := off/man.chunkSize, (off+n-1)/man.chunkSize
	for i := first; i <= last; i += chunksPerGet {
		j := min(i+chunksPerGet, last+1)
		resp, err := l.cli.Get(cctx, l.k.chunk(man.id, i), clientv3.WithRange(l.k.chunk(man.id, j)))
		if err != nil {
			return nil, l.callErr(ctx, op, err)
		}
		if len(resp.Kvs) != j-i {
			// Chunks go away only when their entry is trimmed.
			if _, err := l.refreshMeta(cctx); err != nil {
				return nil, l.callErr(ctx, op, err)
			}
			if p < l.trimPoint() {
				return nil, fmt.Errorf("etcdlog: %s: %w", op, log.ErrTrimmed)
			}
			return nil, fmt.Errorf("etcdlog: %s: %w: %d of chunks %d..%d of %s missing", op, ErrCorrupt, j-i-len(resp.Kvs), i, j-1, man.id)
		}
		for k, kv := range resp.Kvs {
			c := i + k
			want := man.chunkSize
			if c == man.chunks()-1 {
				want = man.size - c*man.chunkSize
			}
			if string(kv.Key) != l.k.chunk(man.id, c) || len(kv.Value) != want {
				return nil, fmt.Errorf("etcdlog: %s: %w: chunk %d of %s has %d bytes, want %d", op, ErrCorrupt, c, man.id, len(kv.Value), want)
			}
			lo, hi := max(off-c*man.chunkSize, 0), min(off+n-c*man.chunkSize, want)
			out = append(out, kv.Value[lo:hi]...)
		}
	}
	return out, nil
}

// ReadRange returns bytes [off, off+n) of the entry at pos (cut short where
// it ends) and the entry's length. Of a large entry it reads only the
// chunks that hold the range.
func (l *Log) ReadRange(ctx context.Context, pos log.Position, off, n int) ([]byte, int, error) {
	op := fmt.Sprintf("read range %d", pos)
	if off < 0 || n < 0 {
		return nil, 0, fmt.Errorf("etcdlog: %s: negative range [%d, +%d)", op, off, n)
	}
	if err := l.check(ctx, op); err != nil {
		return nil, 0, err
	}
	cut := func(size int) (int, int) {
		lo := min(off, size)
		return lo, min(n, size-lo)
	}
	l.mu.Lock()
	trimmed := uint64(pos) < l.m.trim
	l.mu.Unlock()
	if !trimmed {
		if d, ok := l.cache.get(uint64(pos)); ok {
			lo, m := cut(len(d))
			return append([]byte(nil), d[lo:lo+m]...), len(d), nil
		}
	}
	v, err := l.readValue(ctx, uint64(pos), op)
	if err != nil {
		return nil, 0, err
	}
	if v.kind == kindData {
		l.cache.put(uint64(pos), v.data)
		lo, m := cut(len(v.data))
		return append([]byte(nil), v.data[lo:lo+m]...), len(v.data), nil
	}
	lo, m := cut(v.man.size)
	data, err := l.readChunks(ctx, uint64(pos), v.man, lo, m, op)
	return data, v.man.size, err
}
