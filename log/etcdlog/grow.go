package etcdlog

import "time"

// grower lets a node that shares the log send fuller, steadier batches:
// when this node has lost the race for the tail lately (see guesser), the
// committer waits a little for its appenders to queue before it sends, up
// to the largest batch of its recent transactions. Two effects: a landed
// transaction carries more entries, and the batch sizes the other nodes see
// as tail moves repeat, so their guesses of the tail (nested in the Else
// branch) hit. The wait is bounded by a quarter of the recent round trip of
// an append transaction, at most maxGrowWait (1 ms); a node alone on the
// log never loses a race and never waits. It is used by the committer
// goroutine alone.
type grower struct {
	sizes [8]int        // entries of the latest landed transactions, newest at (n-1)%8
	n     int           // transactions recorded
	rtt   time.Duration // moving average of the append transactions' round trips
}

// maxGrowWait bounds the committer's wait for more appends (Log.maxGrowWait;
// tests and benchmarks change it, 0 turns the wait off).
const maxGrowWait = time.Millisecond

// landed records a transaction that landed entries entries.
func (g *grower) landed(entries int) {
	g.sizes[g.n%len(g.sizes)] = entries
	g.n++
}

// roundTrip records the round trip of an append transaction.
func (g *grower) roundTrip(d time.Duration) {
	if g.rtt == 0 {
		g.rtt = d
		return
	}
	g.rtt += (d - g.rtt) / 8
}

// target returns how many entries to wait for: the largest of the recent
// landed batches (0 before any landed).
func (g *grower) target() int {
	t := 0
	for _, s := range g.sizes[:min(g.n, len(g.sizes))] {
		t = max(t, s)
	}
	return t
}

// wait returns how long to wait at most for the target: a quarter of the
// recent round trip, at most limit.
func (g *grower) wait(limit time.Duration) time.Duration {
	return min(g.rtt/4, limit)
}

// grow adds appends to batch as they arrive, while this node shares the
// log and until the batch holds the recent target or the wait is over,
// within the batch limits; the first append that does not fit is returned
// as carry.
func (l *Log) grow(batch []*appendReq) ([]*appendReq, *appendReq) {
	if l.maxGrowWait <= 0 || !l.guess.sharing() {
		return batch, nil
	}
	n, bytes := 0, 0
	for _, r := range batch {
		if r.large != nil {
			return batch, nil
		}
		n, bytes = n+len(r.vals), bytes+r.bytes
	}
	target := min(l.batches.target(), l.opts.MaxBatchEntries)
	d := l.batches.wait(l.maxGrowWait)
	if n >= target || bytes >= l.opts.MaxBatchBytes || d <= 0 {
		return batch, nil
	}
	l.growWaits.Add(1)
	if l.onGrowWait != nil {
		l.onGrowWait()
	}
	start := time.Now()
	defer func() { l.growWaited.Add(int64(time.Since(start))) }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for n < target {
		select {
		case r := <-l.reqs:
			if !l.joins(r, n, bytes) {
				return batch, r
			}
			batch = append(batch, r)
			n, bytes = n+len(r.vals), bytes+r.bytes
		case <-timer.C:
			return batch, nil
		case <-l.ctx.Done():
			return batch, nil
		}
	}
	return batch, nil
}
