package seglog

import (
	"errors"
	"os"
	"syscall"
)

// fdatasync flushes f's data and the metadata needed to read it.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// preallocate reserves size bytes for f (its size becomes size), so that
// appends do not allocate blocks one group at a time.
func preallocate(f *os.File, size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EOPNOTSUPP, syscall.ENOSYS:
			return f.Truncate(size)
		}
		return err
	}
}

// dataEnd returns an offset past which f (of size bytes) holds only zeros:
// the end of its last data extent, asked of the file system with
// SEEK_DATA/SEEK_HOLE (preallocated, never written extents are holes to
// it), or size where it cannot tell.
func dataEnd(f *os.File, size int64) int64 {
	const seekData, seekHole = 3, 4
	end, pos := int64(0), int64(0)
	for pos < size {
		d, err := f.Seek(pos, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // no data at or after pos
		}
		if err != nil {
			return size
		}
		h, err := f.Seek(d, seekHole)
		if err != nil || h <= d {
			return size
		}
		end, pos = h, h
	}
	return min(end, size)
}

// firstHole returns the offset of f's first hole (bytes that are not
// written data: never written, or punched), or size if it has none.
func firstHole(f *os.File, size int64) int64 {
	const seekHole = 4
	h, err := f.Seek(0, seekHole)
	if err != nil {
		return 0
	}
	return min(h, size)
}

// punchHole frees the blocks of f's bytes [off, off+n) (they read as
// zeros after it), keeping f's size. It reports whether it could.
func punchHole(f *os.File, off, n int64) bool {
	const punchHole, keepSize = 0x02, 0x01 // FALLOC_FL_PUNCH_HOLE, FALLOC_FL_KEEP_SIZE
	for {
		err := syscall.Fallocate(int(f.Fd()), punchHole|keepSize, off, n)
		if err != syscall.EINTR {
			return err == nil
		}
	}
}
