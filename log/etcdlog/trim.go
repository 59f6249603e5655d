package etcdlog

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func (l *Log) kickTrimmer() {
	select {
	case l.trimmer <- struct{}{}:
	default:
	}
}

// trimLoop deletes what lies below the trim point: the chunks of large
// entries there, their markers and the entries, then (unless NoCompact)
// compacts etcd's history to the delete. Every node with the log open does
// this after a trim it sees; deletes are idempotent, so nodes racing at it
// do no harm. A failed pass is retried a second later.
func (l *Log) trimLoop() {
	defer l.wg.Done()
	var done uint64 // everything below it is deleted
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-l.trimmer:
		case <-retry.C:
		case <-l.ctx.Done():
			return
		}
		trim := l.trimPoint()
		if trim <= done {
			continue
		}
		if err := l.collect(done, trim); err != nil {
			if l.ctx.Err() != nil {
				return
			}
			retry.Reset(time.Second)
			continue
		}
		done = trim
	}
}

// collect deletes positions [from, to).
func (l *Log) collect(from, to uint64) error {
	ctx, cancel := context.WithTimeout(l.ctx, l.opts.RequestTimeout)
	defer cancel()
	var rev int64
	// Markers of large entries: their chunks first, then the marker.
	for {
		resp, err := l.cli.Get(ctx, l.k.marker(from), clientv3.WithRange(l.k.marker(to)), clientv3.WithLimit(256))
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			d, err := l.cli.Txn(ctx).Then(
				clientv3.OpDelete(l.k.chunks(string(kv.Value)), clientv3.WithPrefix()),
				clientv3.OpDelete(string(kv.Key)),
			).Commit()
			if err != nil {
				return err
			}
			rev = d.Header.Revision
		}
		if !resp.More {
			break
		}
	}
	// Entries, a page at a time.
	start := from
	for {
		resp, err := l.cli.Get(ctx, l.k.entry(start), clientv3.WithRange(l.k.entry(to)), clientv3.WithKeysOnly(), clientv3.WithLimit(1000))
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			break
		}
		lastKey := string(resp.Kvs[len(resp.Kvs)-1].Key)
		last, ok := l.k.posOfEntryKey(lastKey)
		if !ok {
			break
		}
		d, err := l.cli.Delete(ctx, l.k.entry(start), clientv3.WithRange(l.k.entry(last+1)))
		if err != nil {
			return err
		}
		rev = d.Header.Revision
		if !resp.More {
			break
		}
		start = last + 1
	}
	l.cache.dropBelow(to)
	if rev > 0 && !l.opts.NoCompact {
		// A compaction at or past this revision by someone else is fine.
		_, _ = l.cli.Compact(ctx, rev)
	}
	return nil
}
