package etcdlog

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watch follows the log's entries and meta keys from revision rev+1: new
// entries go to the cache, tail and trim changes wake WaitTail callers. When
// the watch breaks (etcd compacted past it, the member lost its leader, the
// connection failed) it reads the meta keys again and watches on from there;
// entries it missed meanwhile are read from etcd when asked for.
func (l *Log) watch(rev int64) {
	defer l.wg.Done()
	for {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(l.ctx))
		ch := l.cli.Watch(wctx, l.k.watchStart(), clientv3.WithRange(l.k.watchEnd()), clientv3.WithRev(rev+1))
		for resp := range ch {
			if resp.Err() != nil {
				break
			}
			var metas []*mvccKV
			var seen int64
			for _, ev := range resp.Events {
				kv := ev.Kv
				seen = max(seen, kv.ModRevision)
				p, isEntry := l.k.posOfEntryKey(string(kv.Key))
				switch {
				case isEntry && ev.Type == mvccpb.DELETE:
					l.cache.drop(p)
				case isEntry:
					if v, err := decodeValue(kv.Value); err == nil && v.kind == kindData {
						l.cache.put(p, v.data)
					}
				case ev.Type == mvccpb.PUT:
					metas = append(metas, kv)
				}
			}
			// A corrupt meta value is reported by the calls that read it.
			_ = l.applyMeta(metas)
			if seen > 0 {
				rev = max(rev, seen)
				l.mu.Lock()
				l.seenRev = max(l.seenRev, seen)
				l.mu.Unlock()
			}
		}
		cancel()
		for {
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(l.ctx, l.opts.RequestTimeout)
			r, err := l.refreshMeta(ctx)
			cancel()
			if err == nil {
				rev = r
				l.mu.Lock()
				l.seenRev = max(l.seenRev, r)
				l.mu.Unlock()
				break
			}
		}
	}
}
