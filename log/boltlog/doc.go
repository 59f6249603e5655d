// Package boltlog is cruzdb's embedded default shared log: a log.Log stored in
// one bbolt file.
//
// # Model
//
// The file has two buckets. "meta" holds a magic string, the format version
// and the trim point. "entries" maps each position, as an 8-byte big-endian
// key (so keys sort in log order and the bucket only ever grows at its end),
// to a one-byte tag followed by the entry: data, or junk written by Fill.
// Data and junk are therefore distinct, and a zero-length entry is data.
// A position with no key is unwritten, or trimmed if it is below the trim
// point.
//
// An entry larger than half a page (2,012 bytes with 4 KiB pages) is stored
// in parts of that size: the position's key holds the first, and the rest
// follow under 12-byte keys (the position, then the part's index), which sort
// right after it. bbolt rewrites a dirty leaf whole at every commit and keeps
// at least two elements in a leaf however large they are, so an entry stored
// as one large value would be written again by the commits that append after
// it: one 100 KB append per commit wrote 8.6 bytes per byte appended, 1.4 in
// parts (BenchmarkWriteAmplification). Files of format version 1, which had
// no parts, are read as they are and become version 2 when the first parted
// entry is written into them; older builds refuse version 2.
//
// The sequencer is the committer: a position is assigned inside the bbolt
// transaction that writes it, so boltlog never leaves holes below its tail,
// and write-once is checked inside that same transaction. Appends skip every
// position that already holds an entry (junk from a Fill at or beyond the
// tail). The tail is not stored; Open recovers it as one past the last data
// entry (or the trim point, if higher). Fills beyond the tail stay in the file
// and Appends keep skipping them after a reopen.
//
// # Durability
//
// Append, Fill and Trim return only after the bbolt transaction holding their
// effect has committed, which includes fdatasync of the file (unless
// Options.NoSync, which is for tests only). If a commit fails (a write or
// fsync error, a full disk), every request of that transaction gets an error
// wrapping the cause, nothing of it is acknowledged, and the log refuses all
// later writes with the same sticky error until it is closed and reopened:
// after a failed fsync the state of the file in the page cache is unknown, so
// retrying could report success for data that is not durable. Reads keep
// working. On reopen, the file says what is durable.
//
// # Group commit
//
// Appends, Fills and Trims join one queue. One group is committed at a time:
// whoever commits takes everything waiting at that moment (up to
// Options.MaxGroupBytes of entry data), writes it in one bbolt transaction,
// commits it with one fsync (bbolt issues two fdatasyncs per commit: data
// pages, then the meta page), and wakes every requester of the group.
// Requests that arrive meanwhile wait for the next group. There is no
// batching delay.
//
// Who commits: a request that finds no group being committed commits one
// itself, on its own goroutine, so a lone appender pays bbolt's commit and
// no goroutine handoff. A request that finds a commit in progress wakes the
// committer goroutine, which commits group after group until the queue is
// empty; between groups it yields the processor once, so that the requesters
// it just woke (already runnable, no timer involved) can queue their next
// requests and join the next group. n concurrent appenders share
// transactions in groups of up to n.
//
// Within a group all requests are concurrent, so whoever commits orders them
// freely: trims first, then fills, then appends in arrival order.
//
// # What blocks what
//
//   - Append, Fill and Trim wait for the commit of their group, and for the
//     group ahead of them. A context that is done while the request is still
//     queued withdraws it (it is never written) and returns the context's
//     error; once a group has taken it, the request waits for the commit,
//     which decides its outcome.
//   - Read runs in its own bbolt read transaction and never waits for a
//     commit, nor a commit for it, except that bbolt cannot grow its
//     memory map while read transactions are open: Options.InitialMmapSize
//     (1 GiB by default) keeps that rare.
//   - Tail reads an in-memory value and blocks on nothing.
//   - Trim makes the trim point durable in its group's transaction; the
//     trimmed entries are deleted afterwards by a background reclaimer, in
//     transactions of Options.ReclaimBatch deletes, which take turns with the
//     groups' transactions on bbolt's single writer lock.
//   - Close waits for the group being committed, fails the requests still
//     queued with log.ErrClosed, stops the reclaimer, waits for reads in
//     progress and closes the file.
//
// # Opening
//
// Open takes bbolt's exclusive file lock; a second opener, in this process or
// another, fails within Options.LockTimeout with an error saying the file is
// in use. A missing or empty file becomes a new log. An existing file is first
// checked through a read-only bbolt open; garbage, another program's bbolt
// file, or a newer format version is refused with an error saying so, and
// the file is left byte for byte unchanged.
//
// # Caveats
//
//   - The file never shrinks: bbolt reuses the pages of reclaimed entries for
//     new ones, but gives no space back to the file system.
//   - Every Append is a bbolt Put into a B+tree; each transaction rewrites the
//     rightmost leaf and its branch pages and writes the meta page, so a lone
//     appender pays bbolt's full commit cost (two fdatasyncs) per entry.
//   - Opening rebuilds bbolt's free list by walking every live page (the free
//     list is not written on each commit, which keeps commits cheap however
//     much was trimmed), so Open takes time proportional to the untrimmed
//     data: about 0.2 s for a million 100-byte entries (128 MB) in the page
//     cache here.
//   - An entry that does not fit in a page takes whole pages of its own: with
//     4 KiB pages a 4 KiB entry takes 8 KiB. Options.PageSize sets the page
//     size of a new file.
//   - Zero-length entries are allowed. Entries up to log.MaxEntrySize (16
//     MiB) are accepted; larger ones are refused with log.ErrTooLarge and
//     nothing is written.
package boltlog
