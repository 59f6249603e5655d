package seglog

import (
	"fmt"
	"os"

	"github.com/cruzlog/cruzdb/internal/groupcommit"
	"github.com/cruzlog/cruzdb/internal/opt"
)

// Options tune a Log. The zero value (and a nil *Options) gives the defaults
// named in each field's comment. Open copies the Options it is given and
// never modifies the caller's value.
type Options struct {
	// NoSync turns off fdatasync after each group commit and the syncs of
	// new files, the metadata file and the directory, and the writing of
	// zeros ahead of the groups (segments are preallocated instead).
	//
	// FOR TESTS ONLY. With NoSync, Append, Fill and Trim return before their
	// effect is durable: a machine crash or power loss can lose
	// acknowledged entries. A process crash alone loses nothing (the page
	// cache survives it). Default false.
	NoSync bool

	// NoZeroFill leaves the blocks ahead of the groups preallocated
	// (fallocate) instead of writing zeros into them first. Without it,
	// runs of groups of at least 64 KiB already land mostly in blocks never
	// written (1.04 against 1.08 bytes written per byte appended for 100 KB
	// entries; 2.05 before they did), so it matters for small groups, and
	// large ones among small ones, whose zeros are written once more than
	// the data; but a group's fdatasync then also commits the
	// conversion of its blocks through the file system's journal (1.17x the
	// fdatasync of written blocks for 1 KB groups, 1.92x for 9 KB, on ext4
	// here). Default false: commit latency first.
	NoZeroFill bool

	// SegmentSize is the size a segment file grows to, in bytes. A new
	// segment is preallocated to 64 KiB and its preallocation grows by a
	// quarter (at least 64 KiB), up to SegmentSize, as groups fill it
	// (without NoSync, as zeros written ahead of the groups: see the
	// package doc). A
	// group commit that does not fit in what is left of SegmentSize starts
	// a new segment (a group larger than a whole segment makes its segment
	// longer). Trim gives disk space
	// back in whole segments, and a trim that leaves at least 64 KiB and
	// half of the active segment below its point seals it at once, so that
	// the next trim deletes it (see the package doc).
	// Default 64 MiB; at least 64 KiB and at most 1 GiB.
	SegmentSize int64

	// MaxGroupBytes bounds the bytes of entry data written in one group
	// commit (one write, one fdatasync). Appends waiting beyond it go into
	// the next group, except appends of at most 64 KiB, which always join
	// the next group (and while one waits, larger appends are left for the
	// group after it, once): a small append never waits for more than the
	// group being written and its own. A single entry larger than the bound
	// is committed alone. Default 4 MiB; at most 1 GiB.
	MaxGroupBytes int

	// Spares is how many segment files Trim keeps for reuse instead of
	// deleting them (recycle.go): a new segment takes one and writes its
	// blocks once, where a new file's blocks are written as zeros first.
	// Spares are kept only where blocks are written ahead of the groups
	// (neither NoSync nor NoZeroFill), and only files of at least 1 MiB (a
	// small log keeps no spare beside it); the disk they hold is given back
	// when a new segment takes them (or at a reopen without them). 0
	// means the default, 1; a negative value keeps none. At most 64.
	Spares int

	// FileMode is the permission of new files. Default 0600.
	FileMode os.FileMode

	// syncHook, when set, replaces fdatasync of segment files (tests only).
	syncHook func(f *os.File) error

	// minSpare, when set, replaces the 1 MiB below which a segment file is
	// not kept as a spare (tests only).
	minSpare int64

	// forcePrepare turns on the preparer (prepare.go) under NoSync (tests
	// only; without NoSync it is always on).
	forcePrepare bool
	// prepSyncHook, when set, replaces the preparer's fdatasync (tests
	// only).
	prepSyncHook func(f *os.File) error
	// sealedHook, when set, is called by roll after it sealed the last
	// segment and before it starts the new one (tests only: a crash
	// there).
	sealedHook func()
	// readHook, when set, is called by Read and ReadRange once they have
	// located pos, before they read the file (tests only: a read in
	// progress across a trim).
	readHook func(pos uint64)
	// completeHook, when set, is called by the committer as it tells a
	// request of a committed group its outcome (tests only).
	completeHook func(r *groupcommit.Request)
}

// Defaults and bounds.
const (
	defaultSegmentSize   = 64 << 20
	minSegmentSize       = 64 << 10
	maxSegmentSize       = 1 << 30
	defaultMaxGroupBytes = 4 << 20
	defaultFileMode      = os.FileMode(0o600)
	defaultSpares        = 1
	maxSpares            = 64
)

// withDefaults returns a copy of o (nil allowed) with defaults filled in, or
// an error naming the first invalid field.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	switch {
	case c.SegmentSize != 0 && (c.SegmentSize < minSegmentSize || c.SegmentSize > maxSegmentSize):
		return c, fmt.Errorf("seglog: invalid options: SegmentSize %d is outside [%d, %d]", c.SegmentSize, minSegmentSize, maxSegmentSize)
	case c.MaxGroupBytes < 0 || c.MaxGroupBytes > maxSegmentSize:
		return c, fmt.Errorf("seglog: invalid options: MaxGroupBytes %d is outside [0, %d]", c.MaxGroupBytes, maxSegmentSize)
	case c.Spares > maxSpares:
		return c, fmt.Errorf("seglog: invalid options: Spares %d is above %d", c.Spares, maxSpares)
	}
	switch {
	case c.Spares == 0:
		c.Spares = defaultSpares
	case c.Spares < 0:
		c.Spares = 0
	}
	opt.Default(&c.SegmentSize, defaultSegmentSize)
	opt.Default(&c.MaxGroupBytes, defaultMaxGroupBytes)
	opt.Default(&c.FileMode, defaultFileMode)
	return c, nil
}
