package boltlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cruzlog/cruzdb/log"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// On-disk format, version 2.
//
// Bucket "meta" holds magic ("cruzdb-log"), version (uint32 big-endian) and
// trim (uint64 big-endian: every position below it is trimmed). Bucket
// "entries" maps a position (uint64 big-endian, so keys sort in log order) to
// a tag byte followed by the entry: tagData + data, or tagJunk alone. An
// entry too large for half a page is stored in parts (see partSize): the
// position's key holds tagParts, the entry's length (uint32 big-endian) and
// the first part; the rest follow under the position's key extended by the
// part's index (uint32 big-endian, from 1), which sorts them right after it.
// Version 1 is version 2 without parts: this build reads it, and marks a
// file version 2 in the transaction that writes its first parted entry.
var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
	keyMagic      = []byte("magic")
	keyVersion    = []byte("version")
	keyTrim       = []byte("trim")
	magic         = []byte("cruzdb-log")
)

const (
	formatVersion   = 2
	formatVersionV1 = 1 // no parted entries

	tagData  byte = 0x01
	tagJunk  byte = 0x02
	tagParts byte = 0x03

	posKeySize  = 8
	partKeySize = posKeySize + 4
	partsHeader = 1 + 4 // tagParts, entry length
)

// partSize is the largest value of an entry's key in a file of pageSize
// pages: two such elements fill a leaf page exactly (16-byte page header,
// 16-byte element headers, part keys). bbolt copies a dirty leaf whole into
// new pages at every commit, and a leaf holds at least two elements however
// large they are, so an entry stored as one value of 100 KB would be written
// again by the next commit or two that append after it (about 8 bytes
// written per byte appended, one append per commit); in parts, only the
// last, partly filled leaf is written again.
func partSize(pageSize int) int { return (pageSize-16)/2 - 16 - partKeySize }

var junkValue = []byte{tagJunk}

// Log is a shared log stored in one bbolt file. It implements log.Log and is
// safe for concurrent use. See the package documentation for its model.
type Log struct {
	db   *bolt.DB
	path string
	opts Options
	part int // partSize of the file's pages

	// version is the file's format version; only the token holder (and
	// Open) touch it.
	version uint32

	// tail and trim are the committed values; only the token holder (and Open)
	// store them.
	tail   atomic.Uint64
	trim   atomic.Uint64
	closed atomic.Bool

	mu     sync.Mutex
	queue  []*request // submitted, not yet taken into a group
	shut   bool       // Close has begun
	failed error      // sticky write failure; writes are refused once set

	// token is held by whoever commits groups, the committer goroutine or
	// a requester committing inline; it has a value when free. Close takes
	// it for good.
	token         chan struct{}
	wake          chan struct{} // cap 1: the queue may be non-empty
	stop          chan struct{} // closed by Close
	committerDone chan struct{}

	// Token-owned scratch, reused across groups.
	group []*request
	arena []byte

	reclaimKick chan struct{} // cap 1
	reclaimStop chan struct{}
	reclaimDone chan struct{}
}

var (
	_ log.Log         = (*Log)(nil)
	_ log.RangeReader = (*Log)(nil)
)

type opKind uint8

const (
	opAppend opKind = iota
	opFill
	opTrim
)

// Request states: the token holder claims a queued request, or its waiter
// cancels it (context done) before that; whoever wins the CAS owns the
// outcome.
const (
	stQueued int32 = iota
	stClaimed
	stCancelled
)

type request struct {
	op    opKind
	data  []byte       // opAppend
	pos   log.Position // target of fill/trim; result of append
	err   error
	state atomic.Int32
	done  chan struct{} // cap 1; signalled once the outcome is set
	write bool          // token holder: this request writes in the current tx
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

func getRequest(op opKind) *request {
	r := requestPool.Get().(*request)
	r.op = op
	r.state.Store(stQueued)
	return r
}

func putRequest(r *request) {
	r.data, r.err, r.pos, r.write = nil, nil, 0, false
	requestPool.Put(r)
}

func (r *request) complete() { r.done <- struct{}{} }

// Open opens the log stored at path, creating the file if it does not exist
// or is empty. opts may be nil. A file that is not a cruzdb log (garbage,
// another bbolt database, a newer format) is refused and left unchanged. A
// file that another opener holds is refused after Options.LockTimeout.
func Open(path string, opts *Options) (*Log, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	fresh := true
	switch fi, err := os.Stat(path); {
	case err == nil && fi.IsDir():
		return nil, fmt.Errorf("boltlog: open %s: is a directory", path)
	case err == nil:
		fresh = fi.Size() == 0
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("boltlog: open %s: %w", path, err)
	}
	if !fresh {
		// Validate read-only first, so that nothing is ever written to a
		// file that is not ours (a read-write bbolt open may write).
		if err := validateReadOnly(path, &o); err != nil {
			return nil, err
		}
	}

	db, err := bolt.Open(path, o.FileMode, &bolt.Options{
		Timeout:         o.LockTimeout,
		NoSync:          o.NoSync,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: o.InitialMmapSize,
		PageSize:        o.PageSize,
		OpenFile:        o.openFile,
	})
	if err != nil {
		return nil, openError(path, &o, err)
	}
	l := &Log{
		db:            db,
		path:          path,
		opts:          o,
		part:          partSize(db.Info().PageSize),
		token:         make(chan struct{}, 1),
		wake:          make(chan struct{}, 1),
		stop:          make(chan struct{}),
		committerDone: make(chan struct{}),
		reclaimKick:   make(chan struct{}, 1),
		reclaimStop:   make(chan struct{}),
		reclaimDone:   make(chan struct{}),
	}
	if err := l.load(fresh); err != nil {
		_ = db.Close()
		return nil, err
	}
	l.token <- struct{}{}
	go l.committer()
	go l.reclaimer()
	if l.needsReclaim() {
		l.kickReclaim()
	}
	return l, nil
}

func openError(path string, o *Options, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("boltlog: open %s: file is in use by another opener (lock not acquired within %v): %w", path, o.LockTimeout, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return fmt.Errorf("boltlog: open %s: not a cruzdb log (not a bbolt file): %w", path, err)
	}
	return fmt.Errorf("boltlog: open %s: %w", path, err)
}

// validateReadOnly opens path read-only and checks it is a cruzdb log of a
// version this package reads.
func validateReadOnly(path string, o *Options) (err error) {
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: o.LockTimeout})
	if err != nil {
		// bbolt's read-only open of a file too short to be a database fails
		// on mmap; report everything but the lock timeout as a foreign file.
		if errors.Is(err, berrors.ErrTimeout) {
			return openError(path, o, err)
		}
		return fmt.Errorf("boltlog: open %s: not a cruzdb log (not a bbolt file): %w", path, err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("boltlog: open %s: %w", path, cerr)
		}
	}()
	return db.View(func(tx *bolt.Tx) error { return checkFormat(path, tx) })
}

// checkFormat checks the meta bucket. bbolt may panic on a corrupt page; that
// is reported as an error instead.
func checkFormat(path string, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("boltlog: open %s: not a cruzdb log (corrupt bbolt file: %v)", path, p)
		}
	}()
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("boltlog: open %s: not a cruzdb log (bbolt file without a %q bucket)", path, bucketMeta)
	}
	if m := meta.Get(keyMagic); !bytes.Equal(m, magic) {
		return fmt.Errorf("boltlog: open %s: not a cruzdb log (magic %q, want %q)", path, m, magic)
	}
	v := meta.Get(keyVersion)
	if len(v) != 4 {
		return fmt.Errorf("boltlog: open %s: corrupt cruzdb log (format version of %d bytes)", path, len(v))
	}
	if ver := binary.BigEndian.Uint32(v); ver != formatVersion && ver != formatVersionV1 {
		return fmt.Errorf("boltlog: open %s: unsupported cruzdb log format version %d (this build reads versions %d and %d)", path, ver, formatVersionV1, formatVersion)
	}
	if t := meta.Get(keyTrim); len(t) != 8 {
		return fmt.Errorf("boltlog: open %s: corrupt cruzdb log (trim point of %d bytes)", path, len(t))
	}
	if tx.Bucket(bucketEntries) == nil {
		return fmt.Errorf("boltlog: open %s: corrupt cruzdb log (no %q bucket)", path, bucketEntries)
	}
	return nil
}

// load initialises a fresh file, or checks an existing one and recovers the
// trim point and the tail.
func (l *Log) load(fresh bool) error {
	if fresh {
		err := l.db.Update(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketMeta) != nil {
				return nil // created by an opener that won a race for the file
			}
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return fmt.Errorf("boltlog: open %s: not a cruzdb log (bbolt file without a %q bucket)", l.path, bucketMeta)
			}
			meta, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			var ver [4]byte
			binary.BigEndian.PutUint32(ver[:], formatVersion)
			var trim [8]byte
			for _, kv := range [][2][]byte{{keyMagic, magic}, {keyVersion, ver[:]}, {keyTrim, trim[:]}} {
				if err := meta.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
			_, err = tx.CreateBucket(bucketEntries)
			return err
		})
		if err != nil {
			return fmt.Errorf("boltlog: open %s: initialise: %w", l.path, err)
		}
	}
	return l.db.View(func(tx *bolt.Tx) error {
		if err := checkFormat(l.path, tx); err != nil {
			return err
		}
		trim := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyTrim))
		// The tail is one past the last data entry: Appends write densely, so
		// junk after it can only come from Fills at or beyond the tail, which
		// Append skips when it reaches them. Trim beyond the tail moves it.
		tail := trim
		c := tx.Bucket(bucketEntries).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if len(k) == partKeySize {
				continue // a part of the entry whose key comes before it
			}
			if len(k) != posKeySize || len(v) == 0 {
				return fmt.Errorf("boltlog: open %s: corrupt cruzdb log (entry key of %d bytes, value of %d)", l.path, len(k), len(v))
			}
			p := binary.BigEndian.Uint64(k)
			if p < trim {
				break
			}
			if v[0] == tagData || v[0] == tagParts {
				if p+1 > tail {
					tail = p + 1
				}
				break
			}
		}
		l.trim.Store(trim)
		l.tail.Store(tail)
		l.version = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyVersion))
		return nil
	})
}

// orBackground tolerates a nil context, as context.Background.
func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

func posKey(dst []byte, p uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, p)
}

// partKey is the key of part i (from 1) of the entry at p.
func partKey(dst []byte, p uint64, i uint32) []byte {
	return binary.BigEndian.AppendUint32(posKey(dst, p), i)
}

// submit queues r and sees to it that a group takes it. If no group is being
// committed, the caller commits one itself, right away and on its own
// goroutine: a lone appender pays no goroutine handoff, only bbolt's commit.
// Otherwise it wakes the committer goroutine, which takes r in the next group
// once the token is free.
func (l *Log) submit(r *request) error { return l.submitAll(r) }

// submitAll queues rs together, so that one group holds them all (unless
// MaxGroupBytes cuts the group between them), in order.
func (l *Log) submitAll(rs ...*request) error {
	l.mu.Lock()
	if l.shut {
		l.mu.Unlock()
		return log.ErrClosed
	}
	if l.failed != nil {
		err := l.failed
		l.mu.Unlock()
		return err
	}
	l.queue = append(l.queue, rs...)
	l.mu.Unlock()
	select {
	case <-l.token:
		// The group holds rs, unless MaxGroupBytes cut it short before; the
		// committer goroutine then takes what is left.
		l.commitNext()
		l.token <- struct{}{}
		l.mu.Lock()
		more := len(l.queue) > 0
		l.mu.Unlock()
		if more {
			l.signal()
		}
	default:
		l.signal()
	}
	return nil
}

// signal wakes the committer goroutine.
func (l *Log) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// wait blocks until r has an outcome, or until ctx is done while r is still
// queued, in which case r is withdrawn (never written) and ctx's error is
// returned. A request already taken into a transaction is waited for: its
// outcome is decided by that commit.
func (l *Log) wait(ctx context.Context, r *request) (cancelled error) {
	done := ctx.Done()
	if done == nil {
		<-r.done
		return nil
	}
	select {
	case <-r.done:
		return nil
	case <-done:
		if r.state.CompareAndSwap(stQueued, stCancelled) {
			return ctx.Err() // the group taker drops r; it is not pooled
		}
		<-r.done
		return nil
	}
}

// Append writes data at the next free position and returns that position once
// the entry is durable. Zero-length entries are allowed: they are data,
// distinct from junk and from holes. Entries larger than log.MaxEntrySize are
// refused with an error wrapping log.ErrTooLarge, and nothing is written.
func (l *Log) Append(ctx context.Context, data []byte) (log.Position, error) {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("boltlog: append: %w", err)
	}
	if len(data) > log.MaxEntrySize {
		return 0, fmt.Errorf("boltlog: append of %d bytes (limit %d): %w", len(data), log.MaxEntrySize, log.ErrTooLarge)
	}
	r := getRequest(opAppend)
	r.data = data
	if err := l.submit(r); err != nil {
		putRequest(r)
		return 0, fmt.Errorf("boltlog: append: %w", err)
	}
	if err := l.wait(ctx, r); err != nil {
		return 0, fmt.Errorf("boltlog: append: %w", err)
	}
	pos, err := r.pos, r.err
	putRequest(r)
	return pos, err
}

// AppendBatch appends the entries in order, in one group commit (one bbolt
// transaction, one fsync) unless Options.MaxGroupBytes splits them, and
// returns their positions, ascending. It implements log.BatchAppender. On an
// error each entry may or may not have been written, as with Append.
func (l *Log) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("boltlog: append: %w", err)
	}
	for _, d := range data {
		if len(d) > log.MaxEntrySize {
			return nil, fmt.Errorf("boltlog: append of %d bytes (limit %d): %w", len(d), log.MaxEntrySize, log.ErrTooLarge)
		}
	}
	rs := make([]*request, len(data))
	for i, d := range data {
		rs[i] = getRequest(opAppend)
		rs[i].data = d
	}
	if err := l.submitAll(rs...); err != nil {
		for _, r := range rs {
			putRequest(r)
		}
		return nil, fmt.Errorf("boltlog: append: %w", err)
	}
	pos := make([]log.Position, len(rs))
	var first error
	for i, r := range rs {
		if err := l.wait(ctx, r); err != nil {
			if first == nil {
				first = fmt.Errorf("boltlog: append: %w", err)
			}
			continue // withdrawn: not pooled (see wait)
		}
		pos[i] = r.pos
		if r.err != nil && first == nil {
			first = r.err
		}
		putRequest(r)
	}
	if first != nil {
		return nil, first
	}
	return pos, nil
}

// Fill makes pos junk forever. See log.Log.
func (l *Log) Fill(ctx context.Context, pos log.Position) error {
	return l.do(ctx, opFill, pos, "fill")
}

// Trim makes every position below pos read log.ErrTrimmed. The trim point is
// durable when Trim returns; the space of trimmed entries is reclaimed in the
// background, in batches of Options.ReclaimBatch (bbolt reuses freed pages;
// the file does not shrink).
func (l *Log) Trim(ctx context.Context, pos log.Position) error {
	return l.do(ctx, opTrim, pos, "trim")
}

func (l *Log) do(ctx context.Context, op opKind, pos log.Position, name string) error {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltlog: %s position %d: %w", name, pos, err)
	}
	r := getRequest(op)
	r.pos = pos
	if err := l.submit(r); err != nil {
		putRequest(r)
		return fmt.Errorf("boltlog: %s position %d: %w", name, pos, err)
	}
	if err := l.wait(ctx, r); err != nil {
		return fmt.Errorf("boltlog: %s position %d: %w", name, pos, err)
	}
	err := r.err
	putRequest(r)
	return err
}

// Read returns a copy of the entry at pos. It runs in a bbolt read
// transaction, concurrently with commits.
func (l *Log) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	var out []byte
	err := l.view(ctx, pos, func(b *bolt.Bucket, v []byte) (err error) {
		if v[0] == tagData {
			out = make([]byte, len(v)-1)
			copy(out, v[1:])
			return nil
		}
		out, _, err = l.readPartsRange(b, uint64(pos), v, 0, log.MaxEntrySize)
		return err
	})
	return out, err
}

// ReadRange implements log.RangeReader: of an entry stored in parts, it
// reads only the parts that hold the range.
func (l *Log) ReadRange(ctx context.Context, pos log.Position, off, n int) ([]byte, int, error) {
	if off < 0 || n < 0 {
		return nil, 0, fmt.Errorf("boltlog: read position %d: range of %d bytes at %d", pos, n, off)
	}
	var out []byte
	var size int
	err := l.view(ctx, pos, func(b *bolt.Bucket, v []byte) (err error) {
		if v[0] == tagData {
			data := v[1:]
			size = len(data)
			lo := min(off, size)
			out = append([]byte{}, data[lo:lo+min(n, size-lo)]...)
			return nil
		}
		out, size, err = l.readPartsRange(b, uint64(pos), v, off, n)
		return err
	})
	return out, size, err
}

// view runs fn on the value of the data entry at pos, in a read
// transaction, or returns the error that reading pos gives: not written,
// junk, trimmed, closed, corrupt.
func (l *Log) view(ctx context.Context, pos log.Position, fn func(b *bolt.Bucket, v []byte) error) error {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltlog: read position %d: %w", pos, err)
	}
	if l.closed.Load() {
		return fmt.Errorf("boltlog: read position %d: %w", pos, log.ErrClosed)
	}
	tx, err := l.db.Begin(false)
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			err = log.ErrClosed
		}
		return fmt.Errorf("boltlog: read position %d: %w", pos, err)
	}
	defer func() { _ = tx.Rollback() }()
	b := tx.Bucket(bucketEntries)
	var kb [8]byte
	v := b.Get(posKey(kb[:0], uint64(pos)))
	// The trim point is loaded after the read transaction began: the
	// reclaimer deletes an entry only after the trim point covering it was
	// published, so a missing entry below the trim point reads as trimmed.
	if uint64(pos) < l.trim.Load() {
		return fmt.Errorf("boltlog: read position %d: %w", pos, log.ErrTrimmed)
	}
	switch {
	case v == nil:
		return fmt.Errorf("boltlog: read position %d: %w", pos, log.ErrNotWritten)
	case len(v) == 0:
		return fmt.Errorf("boltlog: read position %d: corrupt entry (empty value)", pos)
	case v[0] == tagData, v[0] == tagParts:
		return fn(b, v)
	case v[0] == tagJunk && len(v) == 1:
		return fmt.Errorf("boltlog: read position %d: %w", pos, log.ErrFilled)
	}
	return fmt.Errorf("boltlog: read position %d: corrupt entry (tag %#x, %d bytes)", pos, v[0], len(v))
}

// partsSize returns the length of the parted entry at pos whose first value
// is head.
func partsSize(pos uint64, head []byte) (int, error) {
	if len(head) < partsHeader {
		return 0, fmt.Errorf("boltlog: read position %d: corrupt entry (parted entry head of %d bytes)", pos, len(head))
	}
	n := int(binary.BigEndian.Uint32(head[1:partsHeader]))
	if n > log.MaxEntrySize || n < len(head)-partsHeader {
		return 0, fmt.Errorf("boltlog: read position %d: corrupt entry (parted entry of %d bytes with a head of %d)", pos, n, len(head))
	}
	return n, nil
}

// readPartsRange copies bytes [off, off+n) of the parted entry at pos whose
// first value is head, reading only the parts that hold them (every part
// but the last is l.part bytes), and returns them and the entry's length.
func (l *Log) readPartsRange(b *bolt.Bucket, pos uint64, head []byte, off, n int) ([]byte, int, error) {
	size, err := partsSize(pos, head)
	if err != nil {
		return nil, 0, err
	}
	lo := min(off, size)
	hi := lo + min(n, size-lo)
	out := make([]byte, 0, hi-lo)
	first := len(head) - partsHeader // bytes of the entry in the head
	if lo < first {
		out = append(out, head[partsHeader+lo:partsHeader+min(hi, first)]...)
	}
	if hi <= first {
		return out, size, nil
	}
	i := uint32(1 + (max(lo, first)-first)/l.part)
	at := first + int(i-1)*l.part // where part i starts in the entry
	var kb [partKeySize]byte
	c := b.Cursor()
	k, v := c.Seek(partKey(kb[:0], pos, i))
	for ; at < hi; i++ {
		if len(k) != partKeySize || binary.BigEndian.Uint64(k) != pos || binary.BigEndian.Uint32(k[posKeySize:]) != i {
			return nil, 0, fmt.Errorf("boltlog: read position %d: corrupt entry (part %d of a %d-byte entry missing)", pos, i, size)
		}
		if end := at + len(v); end > size || (len(v) != l.part && end != size) {
			return nil, 0, fmt.Errorf("boltlog: read position %d: corrupt entry (part %d of %d bytes at byte %d of a %d-byte entry, parts of %d)", pos, i, len(v), at, size, l.part)
		}
		s, e := max(lo, at)-at, min(hi, at+len(v))-at
		if s < e {
			out = append(out, v[s:e]...)
		}
		at += len(v)
		k, v = c.Next()
	}
	return out, size, nil
}

// Tail returns the next position to be assigned. Positions filled at or
// beyond it are skipped by Append, but do not move it.
func (l *Log) Tail(ctx context.Context) (log.Position, error) {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("boltlog: tail: %w", err)
	}
	if l.closed.Load() {
		return 0, fmt.Errorf("boltlog: tail: %w", log.ErrClosed)
	}
	return log.Position(l.tail.Load()), nil
}

// Close waits for the group being committed, fails the requests still queued
// with log.ErrClosed, stops the reclaimer, waits for reads in progress and
// closes the file. Later calls, Close included, return log.ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.shut {
		l.mu.Unlock()
		return fmt.Errorf("boltlog: close %s: %w", l.path, log.ErrClosed)
	}
	l.shut = true
	l.closed.Store(true)
	pending := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, r := range pending {
		if r.state.CompareAndSwap(stQueued, stClaimed) {
			r.err = l.opError(r, log.ErrClosed)
			r.complete()
		}
	}
	<-l.token // wait for the group being committed; no other group starts
	close(l.stop)
	<-l.committerDone
	close(l.reclaimStop)
	<-l.reclaimDone
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("boltlog: close %s: %w", l.path, err)
	}
	return nil
}

func (l *Log) opError(r *request, err error) error {
	switch r.op {
	case opAppend:
		if r.write {
			return fmt.Errorf("boltlog: append at position %d: %w", r.pos, err)
		}
		return fmt.Errorf("boltlog: append: %w", err)
	case opFill:
		return fmt.Errorf("boltlog: fill position %d: %w", r.pos, err)
	default:
		return fmt.Errorf("boltlog: trim position %d: %w", r.pos, err)
	}
}

// setFailed records a write failure. From then on every write is refused.
func (l *Log) setFailed(cause error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		l.failed = fmt.Errorf("%s: commit failed, nothing of that commit is acknowledged, and the log refuses writes until reopened: %w", l.path, cause)
	}
	return l.failed
}

// committer commits the groups of requests that arrive while another group
// is being committed, until Close.
func (l *Log) committer() {
	defer close(l.committerDone)
	for {
		select {
		case <-l.wake:
		case <-l.stop:
			return
		}
		select {
		case <-l.token:
		case <-l.stop:
			return
		}
		for l.commitNext() {
			// Let the requesters just woken run before taking the next
			// group: those that append again join it, instead of waiting a
			// whole commit for the one after. This waits for no timer, only
			// for goroutines that are already runnable.
			runtime.Gosched()
		}
		l.token <- struct{}{}
	}
}

// commitNext takes every request waiting at the moment (up to MaxGroupBytes
// of entry data) and commits them as one group. It reports false if nothing
// was waiting. The caller holds the token.
func (l *Log) commitNext() bool {
	l.mu.Lock()
	n, size := 0, 0
	for n < len(l.queue) {
		if r := l.queue[n]; r.op == opAppend {
			if n > 0 && size+len(r.data) > l.opts.MaxGroupBytes {
				break
			}
			size += len(r.data)
		}
		n++
	}
	l.group = append(l.group[:0], l.queue[:n]...)
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	failed := l.failed
	l.mu.Unlock()
	if n == 0 {
		return false
	}
	l.commitGroup(l.group, failed)
	clear(l.group)
	return true
}

// commitGroup runs one transaction for group. Within a group the requests are
// concurrent (none has returned), so any order is a valid linearisation: trims
// first, then fills, then appends, which therefore skip positions the fills
// took.
func (l *Log) commitGroup(group []*request, failed error) {
	n := 0
	for _, r := range group {
		if r.state.CompareAndSwap(stQueued, stClaimed) {
			group[n] = r
			n++
		}
	}
	group = group[:n]
	if len(group) == 0 {
		return
	}
	if failed != nil {
		for _, r := range group {
			r.err = l.opError(r, failed)
			r.complete()
		}
		return
	}
	trim, tail := l.trim.Load(), l.tail.Load()
	err := l.runGroup(group, &trim, &tail)
	if err != nil {
		err = l.setFailed(err)
		for _, r := range group {
			if r.err == nil {
				r.err = l.opError(r, err)
			}
			r.complete()
		}
		return
	}
	advanced := trim > l.trim.Load()
	l.trim.Store(trim)
	l.tail.Store(tail)
	for _, r := range group {
		r.complete()
	}
	if advanced {
		l.kickReclaim()
	}
	if cap(l.arena) > 4<<20 {
		l.arena = nil
	}
}

// runGroup writes group in one transaction and commits it, updating trim and
// tail to their values after the commit. Requests get their results, except
// for the error of a failed commit, which the caller sets.
func (l *Log) runGroup(group []*request, trim, tail *uint64) error {
	tx, err := l.db.Begin(true)
	if err != nil {
		return err
	}
	// Rolls back on every early return; a no-op after Commit (or after the
	// commit hook) closed tx.
	defer func() { _ = tx.Rollback() }()
	dirty := false
	meta := tx.Bucket(bucketMeta)
	entries := tx.Bucket(bucketEntries)
	entries.FillPercent = 1.0 // keys only ever grow: pack leaves full

	// Trims.
	newTrim := *trim
	for _, r := range group {
		if r.op == opTrim && uint64(r.pos) > newTrim {
			newTrim = uint64(r.pos)
		}
	}
	if newTrim > *trim {
		var b [8]byte
		if err := meta.Put(keyTrim, posKey(b[:0], newTrim)); err != nil {
			return err
		}
		dirty = true
	}
	newTail := max(*tail, newTrim)

	// Fills: the write-once check reads the entry inside this transaction.
	for _, r := range group {
		if r.op != opFill || uint64(r.pos) < newTrim {
			continue // trimmed: Fill is idempotent there
		}
		k := posKey(nil, uint64(r.pos)) // not reused: a key must outlive the tx
		switch v := entries.Get(k); {
		case v == nil:
			if err := entries.Put(k, junkValue); err != nil {
				return err
			}
			r.write, dirty = true, true
		case len(v) > 0 && (v[0] == tagData || v[0] == tagParts):
			r.err = fmt.Errorf("boltlog: fill position %d: %w", r.pos, log.ErrWritten)
		case len(v) != 1 || v[0] != tagJunk:
			r.err = fmt.Errorf("boltlog: fill position %d: corrupt entry (%d bytes)", r.pos, len(v))
		}
	}

	// Appends: assign positions from the tail, skipping every position that
	// holds an entry in this transaction (junk from fills at or beyond the
	// tail). One cursor walk covers the group; positions are assigned before
	// any Put, since a Put may invalidate the cursor.
	size := 0
	c := entries.Cursor()
	var kb [8]byte
	k, _ := c.Seek(posKey(kb[:0], newTail))
	p := newTail
	for _, r := range group {
		if r.op != opAppend {
			continue
		}
		for k != nil {
			if len(k) == partKeySize {
				k, _ = c.Next() // a part of the entry before: no position of its own
				continue
			}
			if binary.BigEndian.Uint64(k) != p {
				break
			}
			p++
			k, _ = c.Next()
		}
		if p == math.MaxUint64 {
			r.err = fmt.Errorf("boltlog: append: log is full (position %d)", p)
			continue
		}
		r.pos, r.write = log.Position(p), true
		p++
		if 1+len(r.data) <= l.part {
			size += posKeySize + 1 + len(r.data)
		} else {
			// The head's key and value, and the other parts' keys: their
			// values are slices of r.data, which outlives the commit.
			size += posKeySize + l.part + (len(r.data)/l.part+1)*partKeySize
		}
	}
	if size > 0 {
		if cap(l.arena) < size {
			l.arena = make([]byte, 0, size)
		}
		buf := l.arena[:0]
		for _, r := range group {
			if r.op != opAppend || !r.write {
				continue
			}
			var err error
			if buf, err = l.putEntry(entries, meta, buf, uint64(r.pos), r.data); err != nil {
				return err
			}
			newTail = max(newTail, uint64(r.pos)+1)
		}
		dirty = true
	}

	if !dirty {
		return nil // nothing to write: the reads above answered everything
	}
	if err := l.opts.commitTx(tx); err != nil {
		return err
	}
	*trim, *tail = newTrim, newTail
	return nil
}

// putEntry writes data at pos, whole or in parts, taking keys (and the head's
// value) from buf, which must have room for them: Put keeps references
// until the commit. It returns buf extended by what it used.
func (l *Log) putEntry(entries, meta *bolt.Bucket, buf []byte, pos uint64, data []byte) ([]byte, error) {
	start := len(buf)
	buf = posKey(buf, pos)
	key := buf[start:len(buf):len(buf)]
	start = len(buf)
	if 1+len(data) <= l.part {
		buf = append(buf, tagData)
		buf = append(buf, data...)
		return buf, entries.Put(key, buf[start:len(buf):len(buf)])
	}
	if l.version < formatVersion {
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], formatVersion)
		if err := meta.Put(keyVersion, v[:]); err != nil {
			return buf, err
		}
		l.version = formatVersion // if the commit fails, the log refuses writes until reopened
	}
	first := l.part - partsHeader
	buf = append(buf, tagParts)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(data)))
	buf = append(buf, data[:first]...)
	if err := entries.Put(key, buf[start:len(buf):len(buf)]); err != nil {
		return buf, err
	}
	for i, off := uint32(1), first; off < len(data); i, off = i+1, off+l.part {
		start = len(buf)
		buf = partKey(buf, pos, i)
		if err := entries.Put(buf[start:len(buf):len(buf)], data[off:min(off+l.part, len(data)):min(off+l.part, len(data))]); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

func (l *Log) kickReclaim() {
	select {
	case l.reclaimKick <- struct{}{}:
	default:
	}
}

func (l *Log) needsReclaim() bool {
	trim := l.trim.Load()
	need := false
	_ = l.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketEntries).Cursor().First()
		need = k != nil && binary.BigEndian.Uint64(k) < trim
		return nil
	})
	return need
}

// reclaimer deletes trimmed entries in batches, each in its own transaction,
// interleaving with the groups' transactions.
func (l *Log) reclaimer() {
	defer close(l.reclaimDone)
	var keys [][]byte
	for {
		select {
		case <-l.reclaimStop:
			return
		case <-l.reclaimKick:
		}
		for more := true; more; {
			select {
			case <-l.reclaimStop:
				return
			default:
			}
			l.mu.Lock()
			failed := l.failed != nil
			l.mu.Unlock()
			if failed {
				return
			}
			var err error
			more, keys, err = l.reclaimBatch(keys[:0])
			if err != nil {
				l.setFailed(fmt.Errorf("reclaim trimmed entries: %w", err))
				return
			}
		}
	}
}

func (l *Log) reclaimBatch(keys [][]byte) (more bool, _ [][]byte, err error) {
	trim := l.trim.Load()
	tx, err := l.db.Begin(true)
	if err != nil {
		return false, keys, err
	}
	b := tx.Bucket(bucketEntries)
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < l.opts.ReclaimBatch; k, _ = c.Next() {
		if binary.BigEndian.Uint64(k) >= trim {
			break
		}
		keys = append(keys, k) // valid for the life of tx
	}
	defer func() { _ = tx.Rollback() }()
	if len(keys) == 0 {
		return false, keys, nil
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return false, keys, err
		}
	}
	more = len(keys) == l.opts.ReclaimBatch
	clear(keys)
	return more, keys, l.opts.commitTx(tx)
}
