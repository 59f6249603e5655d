package intention

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Benchmarks of the typical intention: nw puts of 16-byte keys and 100-byte
// values, and 2 point reads.
var benchShapes = []struct {
	name string
	nw   int
}{{"2w", 2}, {"8w", 8}}

func BenchmarkEncode(b *testing.B) {
	for _, s := range benchShapes {
		in := typical(s.nw)
		b.Run(s.name, func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.SetBytes(int64(in.EncodedSize()))
			b.ReportAllocs()
			for b.Loop() {
				buf = in.AppendPayload(buf[:0])
			}
		})
		b.Run(s.name+"/new", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = in.AppendPayload(nil)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, s := range benchShapes {
		enc := typical(s.nw).AppendPayload(nil)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.name+"/nocopy", func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeNoCopy(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Baselines: the msgpack library's Decoder primitives, and its
		// reflection-based Unmarshal.
		b.Run(s.name+"/library", func(b *testing.B) {
			b.ReportAllocs()
			r := bytes.NewReader(enc)
			d := msgpack.NewDecoder(r)
			for b.Loop() {
				r.Reset(enc)
				d.Reset(r)
				if _, err := libDecode(d); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.name+"/reflect", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var v []any
				if err := msgpack.Unmarshal(enc, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	in := typical(8)
	for b.Loop() {
		if err := in.Validate(1024, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeInto(b *testing.B) {
	for _, s := range benchShapes {
		enc := typical(s.nw).AppendPayload(nil)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			var in Intention
			for b.Loop() {
				if err := DecodeInto(&in, enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
