package boltlog

import (
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Options tune a Log. The zero value (and a nil *Options) gives the defaults
// named in each field's comment. Open copies the Options it is given and
// never modifies the caller's value.
type Options struct {
	// NoSync turns off fsync after each commit (bbolt's NoSync).
	//
	// FOR TESTS ONLY. With NoSync, Append, Fill and Trim return before their
	// effect is durable: a machine crash or power loss can lose acknowledged
	// entries or leave a corrupt file, which breaks the log's contract. A
	// process crash alone loses nothing (the page cache survives it).
	// Default false.
	NoSync bool

	// LockTimeout is how long Open waits for the file lock when another
	// opener (this process or another) holds the file, before failing with
	// an error saying the file is in use. Default 500ms. Must not be negative.
	LockTimeout time.Duration

	// MaxGroupBytes bounds the bytes of entry data committed in one group
	// (one bbolt transaction, one fsync). Appends waiting beyond it go into
	// the next group. A single entry larger than the bound is committed alone.
	// Default 32 MiB. Must not be negative.
	MaxGroupBytes int

	// ReclaimBatch is how many trimmed entries the background reclaimer
	// deletes per bbolt transaction, so that a huge Trim never builds one
	// giant transaction. Default 4096. Must not be negative.
	ReclaimBatch int

	// InitialMmapSize is the size, in bytes, of bbolt's initial memory map.
	// Read transactions block bbolt from growing the map, so a generous map
	// keeps Reads from stalling commits while the file grows. It costs
	// address space, not memory. Default 1 GiB. Must not be negative.
	InitialMmapSize int

	// PageSize is the bbolt page size of a new file, in bytes: a power of two
	// from 1 KiB to 64 KiB. An existing file keeps the page size it was
	// created with. Larger pages suit large entries (an entry that does not
	// fit in a page takes whole pages of its own). Default: the operating
	// system's page size.
	PageSize int

	// FileMode is the permission of a newly created file. Default 0600.
	FileMode os.FileMode

	// Test hooks, used by this package's tests only.
	//
	// commitTx replaces tx.Commit for every write transaction; it must
	// either commit or roll back tx.
	commitTx func(tx *bolt.Tx) error
	// openFile replaces os.OpenFile when the file is opened for writing.
	openFile func(name string, flag int, perm os.FileMode) (*os.File, error)
}

// Defaults.
const (
	defaultLockTimeout     = 500 * time.Millisecond
	defaultMaxGroupBytes   = 32 << 20
	defaultReclaimBatch    = 4096
	defaultInitialMmapSize = 1 << 30
	defaultFileMode        = os.FileMode(0o600)
)

// withDefaults returns a copy of o (nil allowed) with defaults filled in, or
// an error naming the first invalid field.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	switch {
	case c.LockTimeout < 0:
		return c, fmt.Errorf("boltlog: invalid options: LockTimeout %v is negative", c.LockTimeout)
	case c.MaxGroupBytes < 0:
		return c, fmt.Errorf("boltlog: invalid options: MaxGroupBytes %d is negative", c.MaxGroupBytes)
	case c.ReclaimBatch < 0:
		return c, fmt.Errorf("boltlog: invalid options: ReclaimBatch %d is negative", c.ReclaimBatch)
	case c.PageSize != 0 && (c.PageSize < 1<<10 || c.PageSize > 64<<10 || c.PageSize&(c.PageSize-1) != 0):
		return c, fmt.Errorf("boltlog: invalid options: PageSize %d is not a power of two from 1 KiB to 64 KiB", c.PageSize)
	case c.InitialMmapSize < 0:
		return c, fmt.Errorf("boltlog: invalid options: InitialMmapSize %d is negative", c.InitialMmapSize)
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = defaultLockTimeout
	}
	if c.MaxGroupBytes == 0 {
		c.MaxGroupBytes = defaultMaxGroupBytes
	}
	if c.ReclaimBatch == 0 {
		c.ReclaimBatch = defaultReclaimBatch
	}
	if c.InitialMmapSize == 0 {
		c.InitialMmapSize = defaultInitialMmapSize
	}
	if c.FileMode == 0 {
		c.FileMode = defaultFileMode
	}
	if c.commitTx == nil {
		c.commitTx = (*bolt.Tx).Commit
	}
	return c, nil
}
