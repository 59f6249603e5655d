package entry

import (
	"encoding/binary"
	"hash/crc32"
	"strconv"
)

// The envelope is FrameSize bytes of framing followed by the payload:
//
//	offset 0  2 bytes  magic 0xC2 0xDB
//	offset 2  1 byte   envelope version (Version)
//	offset 3  1 byte   entry type
//	offset 4  4 bytes  CRC-32C (Castagnoli), little-endian
//	offset 8  ...      payload (msgpack)
//
// The checksum covers the version and type bytes as well as the payload
// (bytes 2..3 then 8..end), so that a flipped type bit, which could turn one
// known type into another, is caught like a flipped payload bit. The payload
// runs to the end of the log entry; there is no length field, since the log
// keeps entry boundaries.
const (
	Magic0    = 0xC2
	Magic1    = 0xDB
	FrameSize = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (t Type) String() string {
	switch t {
	case TypeHeader:
		return "header"
	case TypeIntention:
		return "intention"
	case TypeAfterimage:
		return "afterimage"
	case TypeCheckpoint:
		return "checkpoint"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Known reports whether t is an entry type of this envelope version.
func (t Type) Known() bool { return t >= TypeHeader && t <= TypeCheckpoint }

// Encode appends the envelope of a payload of type t to dst and returns the
// extended slice. The payload is copied; dst and payload may not overlap.
func Encode(dst []byte, t Type, payload []byte) []byte {
	dst, start := begin(dst, len(payload))
	dst = append(dst, payload...)
	return seal(dst, start, t)
}

// Begin starts an entry in dst whose payload the caller appends next
// (growing dst for about size payload bytes), and returns where the entry
// starts, for Seal. It lets an encoder write its payload in place.
func Begin(dst []byte, size int) ([]byte, int) { return begin(dst, size) }

// Seal finishes the entry of type t started at dst[start:] by Begin, once
// its whole payload has been appended.
func Seal(dst []byte, start int, t Type) []byte { return seal(dst, start, t) }

// begin appends room for the framing, growing dst for about size more
// payload bytes, and returns where the frame starts.
func begin(dst []byte, size int) ([]byte, int) {
	if cap(dst)-len(dst) < FrameSize+size {
		grown := make([]byte, len(dst), len(dst)+FrameSize+size)
		copy(grown, dst)
		dst = grown
	}
	return append(dst, Magic0, Magic1, Version, 0, 0, 0, 0, 0), len(dst)
}

// seal fills in the framing of the frame at dst[start:], whose payload has
// been appended after it.
func seal(dst []byte, start int, t Type) []byte {
	f := dst[start:]
	f[3] = byte(t)
	binary.LittleEndian.PutUint32(f[4:FrameSize], checksum(f))
	return dst
}

// checksum is the CRC-32C of a frame: its version and type bytes, then its
// payload.
func checksum(frame []byte) uint32 {
	c := crc32.Update(0, castagnoli, frame[2:4])
	return crc32.Update(c, castagnoli, frame[FrameSize:])
}

// PeekType returns the type of the entry at log position pos whose first
// bytes are prefix (at least FrameSize), checking its magic, version and type
// but not its checksum, which covers the whole entry: for a reader of part of
// an entry, which must check what it reads some other way. Errors are
// Decode's.
func PeekType(pos uint64, prefix []byte) (Type, error) {
	switch {
	case len(prefix) < FrameSize:
		return 0, corruptf(pos, "short frame of %d bytes", len(prefix))
	case prefix[0] != Magic0 || prefix[1] != Magic1:
		return 0, corruptf(pos, "bad magic 0x%02x%02x", prefix[0], prefix[1])
	case prefix[2] != Version:
		return 0, corruptf(pos, "unknown envelope version %d", prefix[2])
	}
	t := Type(prefix[3])
	if !t.Known() {
		return 0, corruptf(pos, "unknown entry type %d", prefix[3])
	}
	return t, nil
}

// Decode checks the envelope of the entry at log position pos and returns its
// type and payload. The payload is a sub-slice of data (data is not copied,
// and the payload's capacity ends where data's length does); it is only as
// owned as data is. A short frame, bad magic, unknown version,
// checksum mismatch or unknown type is an error wrapping ErrCorrupt (a
// *CorruptError naming pos).
func Decode(pos uint64, data []byte) (Type, []byte, error) {
	switch {
	case len(data) < FrameSize:
		return 0, nil, corruptf(pos, "short frame of %d bytes", len(data))
	case data[0] != Magic0 || data[1] != Magic1:
		return 0, nil, corruptf(pos, "bad magic 0x%02x%02x", data[0], data[1])
	case data[2] != Version:
		return 0, nil, corruptf(pos, "unknown envelope version %d", data[2])
	}
	want := binary.LittleEndian.Uint32(data[4:FrameSize])
	if got := checksum(data); got != want {
		return 0, nil, corruptf(pos, "checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	t := Type(data[3])
	if !t.Known() {
		return 0, nil, corruptf(pos, "unknown entry type %d", data[3])
	}
	return t, data[FrameSize:len(data):len(data)], nil
}
