// Package etcdlog is a log.Log kept in etcd, so that cruzdb nodes on
// several machines share one log.
//
// Several Logs opened with the same name (on one etcd cluster, with the same
// Options.KeyPrefix), in one process or on many machines, are one log.
//
// # Appends
//
// Positions are assigned by compare-and-swap of the log's tail key in the
// same etcd transaction that writes the entries:
//
//	If(tail, trim and ahead keys unchanged) Then(put entries t..t+k-1, put tail = t+k) Else(get them)
//
// so a position is taken only together with its data: there are no holes and
// nothing is written twice. A node's committer gathers the appends waiting
// on it into one transaction (up to Options.MaxBatchEntries entries and
// MaxBatchBytes bytes); when another node's transaction got there first, it
// retries at once with the keys the Else branch returned. A node that has
// lost such races lately nests a guess in the Else branch:
//
//	Else(If(tail = t+d, trim and ahead keys unchanged) Then(put entries t+d.., put tail) Else(get them))
//
// where d is the most frequent tail move of its recent losses, so that when
// the other node's batch was of that size the batch still lands in the same
// round trip. The guess compares the tail's value exactly, so it can only
// write where the tail is. Such a node also holds its next batch back
// briefly (at most a quarter of its recent round trip, and 1 ms) until it
// is as large as its recent batches: fuller batches land more per won race,
// and batch sizes that repeat are tail moves the other nodes guess right. A
// node alone on the log never loses a race and never waits. No node reserves positions ahead of time: a
// reserved, unwritten position would be a hole every other node waits on.
//
// # Fill and Trim
//
// Fill at the tail puts junk there and moves the tail in one transaction;
// beyond the tail it puts junk and records the position in the ahead key,
// which appenders skip; where data is it returns log.ErrWritten. Trim raises
// the trim key, which every write compares, so nothing is written below it
// again; a background goroutine then deletes the entries (and the chunks of
// large ones) and, unless Options.NoCompact, compacts etcd's history.
//
// # Large entries
//
// etcd refuses requests over 1.5 MiB by default, and cruzdb entries may be
// log.MaxEntrySize (16 MiB). An entry over Options.ChunkSize is written as
// chunks under an etcd lease first, then through the committer as an entry
// naming them, whose transaction detaches the chunks from the lease. If the
// writer dies in between, nothing names the chunks and etcd deletes them
// when the lease expires (Options.ChunkLeaseTTL).
//
// # Reading and waiting
//
// Each Log watches its log's entries and meta keys: new entries go to a
// bounded cache (Options.CacheBytes) that replay reads without a round
// trip, and tail changes wake WaitTail (log.TailWaiter), so a reader waits
// for new entries without polling etcd. Tail and reads of uncached entries
// are linearizable etcd reads.
//
// The caller owns the etcd client passed to Open (TLS and etcd
// authentication are configured on it); Close does not close it.
package etcdlog
