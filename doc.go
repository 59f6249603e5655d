// Package cruzdb is a transactional, serializable key-value database whose
// only durable state is a shared log.
//
// # Model
//
// A transaction reads an immutable snapshot: the state after some log
// position s. Writable transactions record the keys they read and the ranges
// they scanned, buffer their writes, and on Commit append an intention (s,
// reads, writes) to the log. Every DB on the log replays it in order with a
// deterministic transaction processor: the intention at p commits unless an
// intention committed at q, s < q < p, wrote a key it read or a key inside a
// range it scanned. Every node makes the same decision, so nodes sharing one
// log converge without talking to each other.
//
//	db, err := cruzdb.Open("data", nil)
//	err = db.Update(ctx, func(tx *cruzdb.Txn) error {
//		v, err := tx.Get([]byte("counter"))
//		...
//		return tx.Put([]byte("counter"), next)
//	})
//
// # What blocks what
//
// Readers never block: a transaction reads the version it started on, and
// replay publishes new versions without waiting for readers. Commit waits
// for one log append and for replay to reach its intention. Update re-runs
// its function on conflict, backing off with jitter, until its context ends
// (Options.MaxConflictRetries can bound it). Open replays the log to its
// tail before it returns.
//
// # Durability and memory
//
// A commit is acknowledged once its intention is durable in the log and the
// processor has decided it; the tree it makes is written back as an
// afterimage in the background (Flush waits for that). Memory is bounded by
// Options.MaxUnflushedBytes (deltas not yet written back: commits wait past
// it) and Options.CacheBytes (written-back nodes kept in memory: the rest are
// read back from the log on demand). Open resumes from the newest afterimage
// whose whole tree is in the log and replays only what follows it. Values
// over 1 KiB are stored once, in their intention; afterimages point at them.
// So do the unchanged values of path-copied nodes high in the tree, which
// every write would otherwise write again (flusher.InlineHeight). On a log
// that appends in batches (the embedded one), while few clients commit, an
// afterimage waits up to 2 ms for the node's next intention and shares its
// group commit, so that one client's commits do not wait behind it
// (Stats.Piggybacked).
//
// # Caveats
//
// Values returned by Get, Range and RangeReverse are copies. Keys are 1 to MaxKeySize
// bytes (16 KiB by default), values up to MaxValueSize (8 MiB); one
// transaction's intention must fit in one log entry (16 MiB). A transaction
// whose snapshot is more than the conflict window of positions old when its
// intention lands aborts. If Commit's context ends before the decision
// arrives, or the append fails ambiguously, the outcome is unknown
// (ErrCommitUnknown): the intention may still commit.
package cruzdb
