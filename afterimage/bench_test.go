package afterimage

import "testing"

// The typical afterimage: 40 nodes of 16-byte keys and 100-byte values.
const benchNodes = 40

func BenchmarkEncode(b *testing.B) {
	a := typical(benchNodes)
	buf := make([]byte, 0, 16384)
	b.SetBytes(int64(a.EncodedSize()))
	b.ReportAllocs()
	for b.Loop() {
		buf = a.AppendPayload(buf[:0])
	}
}

func BenchmarkDecode(b *testing.B) {
	enc := typical(benchNodes).AppendPayload(nil)
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
			if _, err := DecodeNode(enc, benchNodes-1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
