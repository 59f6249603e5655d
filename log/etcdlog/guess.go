package etcdlog

// guesser remembers by how much the tail moved when this node's append
// transaction lost the race for it, so that the next transaction can carry,
// in its Else branch, the same batch placed after the tail another writer is
// likely to have set meanwhile (see commit). It is used by the committer
// goroutine alone.
type guesser struct {
	deltas [16]uint64 // the latest losses' tail moves, newest at (n-1)%16
	n      int        // losses recorded
	txns   int        // transactions sent
	lastAt int        // txns when the latest loss was recorded
}

// guessWindow: a node that lost none of its last guessWindow transactions
// sends no guesses (it is alone on the log, or winning anyway).
const guessWindow = 32

// record notes that a transaction found the tail delta positions beyond
// the tail it assumed.
func (g *guesser) record(delta uint64) {
	if delta == 0 {
		return
	}
	g.deltas[g.n%len(g.deltas)] = delta
	g.n++
	g.lastAt = g.txns
}

// sharing reports whether this node lost a race for the tail in its last
// guessWindow transactions, i.e. another node appends to the log too.
func (g *guesser) sharing() bool {
	return g.n > 0 && g.txns-g.lastAt <= guessWindow
}

// guesses returns up to k tail moves to try, most frequent among the recent
// losses first (ties: the most recent first), or none if no loss is recent.
func (g *guesser) guesses(k int) []uint64 {
	if k <= 0 || !g.sharing() {
		return nil
	}
	type cand struct {
		delta      uint64
		count, age int
	}
	var cs []cand
	m := min(g.n, len(g.deltas))
	for age := range m {
		d := g.deltas[(g.n-1-age)%len(g.deltas)]
		found := false
		for i := range cs {
			if cs[i].delta == d {
				cs[i].count++
				found = true
				break
			}
		}
		if !found {
			cs = append(cs, cand{delta: d, count: 1, age: age})
		}
	}
	// Insertion sort: at most 16 candidates.
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && (cs[j].count > cs[j-1].count ||
			cs[j].count == cs[j-1].count && cs[j].age < cs[j-1].age); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
	out := make([]uint64, 0, min(k, len(cs)))
	for _, c := range cs[:min(k, len(cs))] {
		out = append(out, c.delta)
	}
	return out
}
