package seglog

import "github.com/cruzlog/cruzdb/log"

var _ log.OrderNotifier = (*Log)(nil)

// NotifyOrder implements log.OrderNotifier: w hears of every group of
// appends once the committer has given them positions and, for a group of
// less than 64 KiB of data, written them, before their fdatasync
// (Ordered), and once they are durable (Durable), both on the committing
// goroutine. A group that holds a fill-ahead or junk record (a
// Fill at or beyond the tail) is not reported as ordered; Durable still is.
func (l *Log) NotifyOrder(w log.OrderWatcher) (stop func()) {
	l.orderMu.Lock()
	l.order = w
	l.orderMu.Unlock()
	return func() {
		l.orderMu.Lock()
		if l.order == w {
			l.order = nil
		}
		l.orderMu.Unlock()
	}
}

// reportOrdered tells the watcher, if any, of the group's data records
// (l.recs), unless the group also holds fill-ahead or junk records.
func (l *Log) reportOrdered() {
	l.orderMu.Lock()
	defer l.orderMu.Unlock()
	if l.order == nil || len(l.fills) > 0 || len(l.junked) > 0 || len(l.recs) == 0 {
		return
	}
	data := l.orderBuf[:0]
	for _, rc := range l.recs {
		if rc.kind != kindData || rc.r == nil {
			return
		}
		data = append(data, rc.r.Data)
	}
	l.order.Ordered(log.Position(l.recs[0].pos), data)
	clear(data)
	l.orderBuf = data[:0]
}

// reportDurable tells the watcher, if any, that every position below tail
// is durable.
func (l *Log) reportDurable(tail uint64) {
	l.orderMu.Lock()
	if l.order != nil {
		l.order.Durable(log.Position(tail))
	}
	l.orderMu.Unlock()
}
