package afterimage

import "testing"

// The typical afterimage: 40 nodes of 16-byte keys and 100-byte values.
const benchNodes = 40

func BenchmarkEncode(b *testing.B) { benchEncode(b, typical(benchNodes)) }

// BenchmarkEncodeValueInIntention encodes the typical afterimage with every
// value in the intention.
func BenchmarkEncodeValueInIntention(b *testing.B) {
	benchEncode(b, typicalInIntention(benchNodes))
}

func BenchmarkDecode(b *testing.B) { benchDecode(b, typical(benchNodes)) }

// BenchmarkDecodeValueInIntention decodes the typical afterimage with every
// value in the intention.
func BenchmarkDecodeValueInIntention(b *testing.B) {
	benchDecode(b, typicalInIntention(benchNodes))
}

func benchEncode(b *testing.B, a *Afterimage) {
	buf := make([]byte, 0, 16384)
	b.SetBytes(int64(a.EncodedSize()))
	b.ReportAllocs()
	for b.Loop() {
		buf = a.AppendPayload(buf[:0])
	}
}

func benchDecode(b *testing.B, a *Afterimage) {
	enc := a.AppendPayload(nil)
	last := uint32(len(a.Nodes) - 1)
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nocopy", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeNoCopy(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("into", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		var a Afterimage
		for b.Loop() {
			if err := DecodeInto(&a, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("node-last", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeNode(enc, last); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLoadOneNode is what loading one evicted node costs in decoding:
// a fresh NodeIndex over an afterimage of 2,000 nodes (one of cruzd's
// combined commits) and one node read from it, the nodes taken in turn.
// "no-offsets" is the same payload written without its node offsets, as
// before they existed: the index parses every node up to the one read.
func BenchmarkLoadOneNode(b *testing.B) {
	const n = 2000
	a := typical(n)
	for i := range a.Nodes {
		a.Nodes[i].Height = uint8(1 + i%250)
	}
	enc := a.AppendPayload(nil)
	noOffsets := append([]byte{0x93}, enc[1:len(enc)-OffsetsSize(n)]...)
	for _, c := range []struct {
		name    string
		payload []byte
	}{{"offsets", enc}, {"no-offsets", noOffsets}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			off := uint32(0)
			for b.Loop() {
				x, err := NewNodeIndex(c.payload)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := x.Node(off); err != nil {
					b.Fatal(err)
				}
				off = (off + 7919) % n
			}
		})
	}
}
