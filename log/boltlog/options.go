package boltlog

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cruzlog/cruzdb/internal/opt"
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

// ErrInvalidOptions: Open was given Options it cannot use.
var ErrInvalidOptions = errors.New("boltlog: invalid options")

// Defaults.
const (
	defaultLockTimeout     = 500 * time.Millisecond
	defaultMaxGroupBytes   = 32 << 20
	defaultReclaimBatch    = 4096
	defaultInitialMmapSize = 1 << 30
	defaultFileMode        = os.FileMode(0o600)
)

// withDefaults returns a copy of o (nil allowed) with defaults filled in, or
// an error naming the first invalid field: Open's only handling of options.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	c.ensureDefaults()
	if err := c.validate(); err != nil {
		return Options{}, err
	}
	return c, nil
}

// ensureDefaults sets every zero field to its default.
func (o *Options) ensureDefaults() {
	opt.Default(&o.LockTimeout, defaultLockTimeout)
	opt.Default(&o.MaxGroupBytes, defaultMaxGroupBytes)
	opt.Default(&o.ReclaimBatch, defaultReclaimBatch)
	opt.Default(&o.InitialMmapSize, defaultInitialMmapSize)
	opt.Default(&o.FileMode, defaultFileMode)
	if o.commitTx == nil {
		o.commitTx = (*bolt.Tx).Commit
	}
}

// validate reports the first field no default can fix.
func (o *Options) validate() error {
	switch {
	case o.LockTimeout < 0:
		return fmt.Errorf("%w: LockTimeout %v is negative", ErrInvalidOptions, o.LockTimeout)
	case o.MaxGroupBytes < 0:
		return fmt.Errorf("%w: MaxGroupBytes %d is negative", ErrInvalidOptions, o.MaxGroupBytes)
	case o.ReclaimBatch < 0:
		return fmt.Errorf("%w: ReclaimBatch %d is negative", ErrInvalidOptions, o.ReclaimBatch)
	case o.PageSize != 0 && (o.PageSize < 1<<10 || o.PageSize > 64<<10 || o.PageSize&(o.PageSize-1) != 0):
		return fmt.Errorf("%w: PageSize %d is not a power of two from 1 KiB to 64 KiB", ErrInvalidOptions, o.PageSize)
	case o.InitialMmapSize < 0:
		return fmt.Errorf("%w: InitialMmapSize %d is negative", ErrInvalidOptions, o.InitialMmapSize)
	}
	return nil
}
