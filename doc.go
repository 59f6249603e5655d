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
// every write would otherwise write again (flusher.InlineHeight). While the
// node commits, an afterimage waits up to 2 ms to share a group commit with
// an intention, so that commits do not wait behind an fdatasync of
// afterimages alone (Stats.Piggybacked): with one or two commits under way
// it rides in one batch with the node's next intention (on a log that
// appends in batches, such as the embedded one); with more, on the embedded
// seglog, it is a lazy append that joins the next group started for any
// write.
//
// On the embedded seglog, replay applies a group commit's intentions while
// the log writes and syncs the group (the log says what it ordered before
// it is durable: log.OrderNotifier), so their decisions are ready when the
// fdatasync ends, as Pebble applies a batch to its memtable while its WAL
// syncs. Nothing applied that way is shown before it is durable: not the
// decision to its committer, not the version new transactions read, not
// Stats.Position, not a Sync. The decisions are those of replay after the
// fdatasync, which Options.ApplyAfterSync brings back.
//
// # Checkpoints and trimming
//
// Every afterimage points into older afterimages, so without checkpoints
// the live tree is spread over the whole history and the log only grows. A
// checkpoint (DB.Checkpoint, or the automatic trigger) appends a cut entry
// at position c. Every node's processor handles it alike, whatever came
// before, in O(1): nothing is copied. Each node of the tree at c gets a
// second address, (c, n), n its post-order number there; every child
// pointer stores the size of the child's subtree, so any descent computes
// a node's number from its parent's (cowtree.Tree.Cut). Deltas after the
// cut write (c, n) pointers to the nodes of the cut's tree, so every
// afterimage written for a later intention points only at c's image or
// later. A value written before c is read, once the log below c is gone,
// from the node of c's image that holds it: a copy knows that node's
// number as it knows its children's (cowtree.Node.ImageValue), and its
// afterimage names it instead of storing the value again (nodes near the
// leaves store it too, since they are the likeliest to be loaded cold).
// Nothing else
// changes: keys, values, entry positions, decisions. The flusher writes c's
// image in the background by walking the cut's tree, as chunk entries (the
// same bytes on every node) followed by a marker naming them; until the
// marker, a node's (c, n) address is found in the cut's tree by its number
// and read where it was written. The writer rests after each chunk so that
// it works at most Options.CheckpointDuty (default a quarter) of the time,
// and replay skips the chunks' bodies: commits and reads go on meanwhile
// and keep the cores (seeds/001, 004: the cut is pinned, readers never
// wait). This preparation is restart-discardable: chunks no
// marker names are never read. The authority steps are strictly ordered
// and the same with Options.CheckpointSerial on or off (seeds/000): the
// first marker for c after c, once replay meets it, is the image's
// authority, as the first afterimage of an intention is its active one;
// only then is the log trimmed below c (and a confirmed cut supersedes an
// older one still being written). Startup treats a marker as proof of
// its cut's whole tree, like an afterimage based on itself, so recovery
// never consults an incomplete image, a late afterimage of an intention
// before the cut is never a safe point once the marker exists, and a node
// opened on a trimmed log starts from the newest checkpoint, reading
// nothing below the trim point. The cut carries the database header, since
// position 0 is trimmed with the rest. No local file records a checkpoint:
// the log decides (seeds/002).
//
// Why this design: it reuses the afterimage machinery whole (intention
// pointers, matching, startup's proof by Base), so its correctness argument
// is the one the flusher already has, and every node reaches the same
// decisions from the log alone. Relocating by numbers rather than by a
// copy at the cut (the first version, kept as the oracle of
// cowtree.TestCutMatchesCopy, which shows both give the same afterimages)
// costs 8 bytes a child pointer in the log and 16 bytes a node in memory,
// and removed the O(nodes) pause of the processor at every cut (10 s at 1M
// keys). Incremental copy-forward would need exact live counts per position.
//
// Automatic checkpoints start when the log bytes replayed since the newest
// cut, images left out, exceed Options.CheckpointLogRatio (default 2; a
// larger ratio is capped at 2 while the image is smaller than
// Options.CheckpointMinLogBytes) times
// the newest image (at least Options.CheckpointMinLogBytes, 96 KiB); a negative ratio turns
// them off. The trigger is log growth, never a timer. If the log outgrows
// the checkpoints (a busy machine slow to run them), commits wait
// (Stats.CheckpointWaits), as they wait for the flusher past
// MaxUnflushedBytes, and the image's writer stops resting until they go on. Several nodes asking at once is harmless: each cut
// makes a complete image, duplicates of a marker are ignored, and a writer
// whose image lost the race abandons it (Stats.CheckpointsAborted). A cut
// another node appended whose image does not come (its writer slow,
// stopped, or held behind) does not hold this node back: once the log grew
// past the trigger since that cut, this node makes a checkpoint of its own,
// and the newer image supersedes the older cut.
//
// A transaction of this DB holds the trim back: the log is trimmed below
// the newest confirmed cut at or below every open snapshot, and the trim
// catches up when old snapshots close. A snapshot on another node does not
// hold it: a read there that needs a node or value below the trim fails
// with an error wrapping log.ErrTrimmed, never with wrong data. View and
// Update, which read the latest state, wait for replay to pass the tail and
// run their function again when that happens to their snapshot (a few times
// at most), so a node's current state is never unreadable; a transaction
// from Begin keeps its snapshot and gets the error. A node
// whose replay falls behind the trim point (its next position, or a node
// its tree needs, was trimmed) resumes from the newest safe point
// (Stats.Rebootstraps); its commits whose intentions were skipped end with
// ErrCommitUnknown.
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
