package seglog

import (
	"bytes"
	"slices"
	"testing"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/; f.Add adds a few more.

// FuzzDecodeRecord: decodeRecord never panics, what it accepts re-encodes
// to the same bytes, and it is accepted from no other seed (the records of
// a reused segment file's former life never check: recycle.go).
func FuzzDecodeRecord(f *testing.F) {
	s7 := segSeed(segVersion, 7)
	f.Add(appendRecord(nil, s7, kindData, 7, 32, []byte("entry")), s7)
	f.Add(appendRecord(nil, 0, kindJunk, 1<<40, 0, nil), uint32(0))
	f.Add(appendRecord(nil, s7, kindIndex, 3, 99, encodeIndex(segIndex{offs: []uint32{32, 64}, kinds: []byte{kindData, kindJunk}})), s7)
	f.Fuzz(func(t *testing.T, b []byte, seed uint32) {
		h, payload, err := decodeRecord(b, seed)
		if h2, ok := checkRecord(b, seed); ok != (err == nil) || (ok && h2 != h) {
			t.Fatalf("checkRecord = %v, %v; decodeRecord = %v, %v", h2, ok, h, err)
		}
		if err != nil {
			return
		}
		n := recHeaderSize + int(h.len)
		if got := appendRecord(nil, seed, h.kind, h.pos, h.gstart, payload); !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoded record differs:\n%x\n%x", got, b[:n])
		}
		for _, other := range []uint32{seed ^ 1, seed + 1, ^seed, segSeed(segVersion, uint64(seed)+1)} {
			if other == seed {
				continue
			}
			if _, _, err := decodeRecord(b, other); err == nil {
				t.Fatalf("record checks from seed %#x and from %#x", seed, other)
			}
		}
	})
}

// FuzzDecodeIndex: decodeIndex never panics, and what it accepts
// re-encodes to the same bytes, with offsets in order inside the segment.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex(segIndex{offs: []uint32{32, 80, 200}, kinds: []byte{kindData, kindJunk, kindData}}), uint32(300))
	f.Add(encodeIndex(segIndex{}), uint32(32))
	f.Fuzz(func(t *testing.T, b []byte, end uint32) {
		ix, err := decodeIndex(b, end)
		if err != nil {
			return
		}
		if got := encodeIndex(ix); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded index differs")
		}
		for i, o := range ix.offs {
			if o < segHeaderSize || uint64(o)+recHeaderSize > uint64(end) || (i > 0 && o <= ix.offs[i-1]) {
				t.Fatalf("accepted offset %d at %d (end %d)", o, i, end)
			}
		}
	})
}

// FuzzScanSegment: scanning any bytes as the last segment never panics;
// what it accepts lies inside the bytes, in order. The segment's version
// and sequence number come from its header when it decodes (version 2,
// sequence 1 when not); base is the fuzzer's.
func FuzzScanSegment(f *testing.F) {
	// A version-2 segment 2 reusing the file of segment 1: its records,
	// then segment 1's after them.
	old := encodeSegHeader(segHeader{seq: 1, base: 0})
	s1 := segSeed(segVersion, 1)
	for p := range uint64(6) {
		old = appendRecord(old, s1, kindData, p, uint32(len(old)), []byte("old record"))
	}
	seg := encodeSegHeader(segHeader{seq: 2, base: 10})
	s2 := segSeed(segVersion, 2)
	seg = appendRecord(seg, s2, kindFillAhead, 99, segHeaderSize, nil)
	g := uint32(len(seg))
	seg = appendRecord(seg, s2, kindData, 10, g, []byte("a"))
	seg = appendRecord(seg, s2, kindJunk, 11, g, nil)
	seg = appendRecord(seg, s2, kindData, 12, uint32(len(seg)), []byte("bb"))
	f.Add(seg, uint64(10))
	f.Add(append(bytes.Clone(seg), old[len(seg):]...), uint64(10))
	f.Add(append(bytes.Clone(seg), 1, 2, 3, 0, 0, 9), uint64(10))
	f.Fuzz(func(t *testing.T, b []byte, base uint64) {
		if len(b) < segHeaderSize {
			return
		}
		h, err := decodeSegHeader(b)
		if err != nil {
			h = segHeader{version: segVersion, seq: 1}
		}
		h.base = base
		r, err := scanSegment("fuzz", b, h)
		if err != nil {
			return
		}
		if int(r.end) > len(b) || (r.zeroTo != 0 && r.zeroTo <= int(r.end)) || r.zeroTo > len(b) {
			t.Fatalf("end %d, zeroTo %d of %d bytes", r.end, r.zeroTo, len(b))
		}
		for i, o := range r.ix.offs {
			if o < segHeaderSize || o >= r.end || (i > 0 && o <= r.ix.offs[i-1]) {
				t.Fatalf("record %d at offset %d (end %d)", i, o, r.end)
			}
		}
	})
}

// FuzzFixed: the segment header, trailer and metadata decoders never panic,
// and what they accept re-encodes to the same bytes.
func FuzzFixed(f *testing.F) {
	f.Add(encodeSegHeader(segHeader{seq: 3, base: 77}))
	f.Add(encodeTrailer(trailer{indexOff: 4096, indexLen: 64}))
	f.Add(encodeMeta(12345))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeSegHeader(b); err == nil && !bytes.Equal(encodeSegHeader(h), b[:segHeaderSize]) {
			t.Fatalf("segment header re-encodes differently")
		}
		if tr, err := decodeTrailer(b); err == nil && !bytes.Equal(encodeTrailer(tr), b) {
			t.Fatalf("trailer re-encodes differently")
		}
		if trim, err := decodeMeta(b); err == nil && !bytes.Equal(encodeMeta(trim), b) {
			t.Fatalf("metadata re-encodes differently")
		}
	})
}

// FuzzHeaderStarts checks headerStarts against trying every offset: the
// scan of a torn tail may skip only offsets where no header can start.
func FuzzHeaderStarts(f *testing.F) {
	rec := appendRecord(nil, segSeed(segVersion, 1), kindData, 7, 0, []byte{0, 0, 0, 1, 0, 0, 0, 0})
	f.Add(rec, 0, len(rec)-1)
	f.Add(append(make([]byte, 40), rec...), 3, 60)
	f.Add(bytes.Repeat([]byte{0, 0, 0, 0, 4, 0, 0, 0, 2}, 20), 1, 170)
	f.Fuzz(func(t *testing.T, data []byte, from, last int) {
		if from < 0 || last >= len(data) || from > last {
			return
		}
		var want []int
		for c := from; c <= last && c+recHeaderSize <= len(data); c++ {
			b := data[c:]
			if b[kindOffset] != 0 && b[21]|b[22]|b[23] == 0 {
				want = append(want, c)
			}
		}
		got := slices.Collect(headerStarts(data, from, last))
		if !slices.Equal(got, want) {
			t.Fatalf("headerStarts(%d, %d) = %v, want %v", from, last, got, want)
		}
	})
}
