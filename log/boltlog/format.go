package boltlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

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

var junkValue = []byte{tagJunk}

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

func posKey(dst []byte, p uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, p)
}
