// Package seglog is a log.Log stored as a directory of append-only segment
// files: a segmented write-ahead log with one fdatasync per group commit.
//
// # Model
//
// A directory holds a metadata file (meta: the trim point), a lock file
// (LOCK) and segment files named by a sequence number
// (0000000000000001.seg, ...). A segment holds the records of a run of
// consecutive positions, from the base position in its header. Each record
// is framed with its length, its position, the offset at which its group
// commit began, its kind and a CRC-32C of all of that and the payload,
// seeded by the segment's sequence number (so a record checks only in the
// segment that wrote it: see Spares below):
// data (an entry), junk (a filled position), or fill-ahead (a Fill at or
// beyond the tail, which takes no position of its own; Append writes junk
// when it reaches that position). Segments are preallocated (fallocate on
// Linux) in steps: a new segment to one step of 64 KiB, and its
// preallocation grows by a quarter (at least a step), up to
// Options.SegmentSize, whenever a group would write past it. A small log holds little disk, and appends
// still find their blocks allocated (one fallocate per step, not one per
// group). Without NoSync (unless Options.NoZeroFill) the blocks are written
// before groups land in them:
// a new segment's first step is written as zeros with its header, and a
// preparer goroutine writes zeros (and fdatasyncs them once) at least half a
// step ahead of the last group, so that a group's fdatasync finds its
// blocks written and commits no extent conversion or allocation through
// the file system's journal (see prepare.go; zeros read as "no record").
// Runs of groups of at least 64 KiB are not given zeros ahead (only a few
// pages after each, for the small groups that follow): written twice they
// would double the bytes written.
// When a group does not fit in what is left of
// Options.SegmentSize, the segment is sealed: its index (the offset and kind of every
// position it holds) is written after its last record as a checksummed
// record, with a trailer that locates it, the file is cut there (or, for a
// file that may become a spare, at the end of its written blocks) and
// synced,
// and a new segment starts, beginning with a fill-ahead record for every fill
// still ahead of the tail, so that deleting older segments loses none.
//
// # Spares
//
// Trim keeps up to Options.Spares (default 1) of the segment files of at
// least 1 MiB it no longer needs as spares (NNNNNNNNNNNNNNNN.spare) instead
// of deleting them, where blocks are written ahead of the groups (neither
// NoSync nor NoZeroFill); a smaller log keeps no spare beside it. A new segment takes the largest spare: it writes its header
// over the old one and then needs zeros only past the old file's size, so a
// log that trims behind its tail writes each block once (see recycle.go).
// A sealed segment that may become a spare (at least 1 MiB) is cut at the
// end of its written blocks (zeros written ahead included), not at its
// index, and not hole-punched when retired, for the next life. The
// old records after the new ones never check (their CRC was seeded by
// another sequence number): to the scan they are bytes that are not a
// record, like a torn write. Open lists only .seg files as segments, deletes a
// spare whose header names another segment than its file name (a crash
// between rewriting its header and renaming it), and keeps the trim point in
// the metadata file, whatever files exist. Version-1 segments (written
// before spares existed) are read and appended to, and deleted when trimmed.
//
// # Group commit
//
// Append, AppendBatch, Fill and Trim queue requests for one committer
// goroutine. It takes every request waiting (appends up to
// Options.MaxGroupBytes of data, except that appends of at most 64 KiB always
// join, and that while one waits, larger appends are left for the next group,
// once: an intention that arrives while a large group of afterimages is being
// written commits in the next group, without the large entries that waited
// with it), assigns positions from the tail, writes all the group's records with
// one write and makes them durable with one fdatasync, then publishes them
// (Read and Tail see an entry only once it is durable) and wakes every
// requester. Requests that arrive meanwhile form the next group. There is no
// batching delay. Within a group, trims go first, then fills, then appends.
//
// # Durability and crashes
//
// Only the last group written can be torn by a crash. Open reads the sealed
// index of every segment but the last (checking its checksum and that its
// offsets are ordered and inside the file) and scans the last segment's
// records, up to its file size (whatever preallocation step it reached: a
// group that extended the preallocation makes the new size durable with its
// own fdatasync), until one does not decode. If no valid record after that point
// belongs to a later group commit, the bad bytes are the torn tail of the
// last group (never acknowledged): Open cuts them off, zeroing on disk the
// records of that group that still check (the rest checks at no offset).
// If a later group follows, the bad record was durable and acknowledged: it
// is corruption, and Open fails with an error wrapping log.ErrCorrupt. Read
// checks the CRC of every record it returns and reports a mismatch the same
// way; nothing that fails its checksum is ever skipped or returned as data.
// A byte flipped in the last group written before a crash cannot be told from
// a torn write and is cut off with it.
//
// A failed write or fdatasync fails the whole group, and the log refuses
// every later write with that error until it is reopened (after a failed
// fdatasync the file's state is unknown). Reads keep working.
//
// # Trim
//
// Trim(p) writes the new trim point to the metadata file atomically (a
// temporary file, fsync, rename, fsync of the directory), then deletes every
// segment file whose positions are all below p (or keeps it as a spare),
// before it returns. A trim
// beyond the tail moves the tail there and starts a new segment at p.
//
// A trim whose point falls inside the last (active) segment retires it if
// at least 64 KiB (one preallocation step) of it, and at least half of what
// it holds, lie below the point: the trim seals it at once, as a full
// segment is sealed, and starts a new one (not waiting for the next group:
// a log at rest gives the dead part back too), so that the next trim past
// its end deletes it whole. A crash inside that roll leaves the trim point
// durable and the segment unsealed (a reopened log appends to it until a
// trim retires it again), sealed with no segment after it (Open starts
// one), or both segments. With trims near the tail the
// directory so stays within a few steps of the log above the trim point,
// whatever Options.SegmentSize is; a trim far below the tail does not cut
// segments short. Once the new segment exists, the retired one's blocks
// wholly below the trim point are freed (a hole punched on Linux; it is
// sealed and no longer last, so it is opened from its index and never
// scanned, and nothing reads below the trim point); not a file that may
// become a spare, whose reuse wants the blocks written. Nothing at or above the
// trim point is ever deleted or punched.
//
// # Concurrency
//
// Reads run concurrently with each other and with group commits: Read looks
// up the record in the in-memory index, reads it with one pread and checks it,
// unless the record is among the last 4 MiB of groups written since Open:
// those the committer also keeps in a ring in memory (the bytes it wrote),
// and Read copies the entry from there (the processor reads every entry back
// right after it is appended).
// Tail reads an in-memory value; WaitTail (log.TailWaiter) wakes when a group
// commit is published or a trim moves the tail, and NotifyTail
// (log.TailNotifier) calls its function then, on the committer's goroutine,
// with no goroutine waiting (the processor arms one only while no local
// commit is under way, so a 1-client commit wakes nobody). Close waits for the group being written,
// fails requests still queued with log.ErrClosed, waits for reads in progress
// and closes the files. Open takes an exclusive lock on the directory; a
// second opener fails at once.
//
// # Caveats
//
//   - Open reads the last segment (up to its preallocation, at most
//     Options.SegmentSize; a reused file up to its size) into memory to
//     scan it.
//   - Spares hold disk after Trim until a new segment takes them: up to
//     Options.Spares files, each the size a segment reached (with its
//     zeros written ahead).
//   - The index takes 5 bytes of memory per position of the untrimmed log;
//     the ring of recent groups 4 MiB, from the first append.
//   - A ReadRange of a record larger than 64 KiB reads and checks the whole
//     record once; later ranges of it read only the range.
//   - Every reopen starts a new segment if the last one was sealed.
//   - Fill-ahead records of sealed segments are never read again (the newest
//     segment carries every fill still ahead of the tail), so a byte flipped
//     in one of them goes unnoticed; so does one flipped in the last group
//     written before a crash (see above).
package seglog
