package entry

import (
	"bytes"
	"testing"

	"github.com/cruzlog/cruzdb/intention"
)

func benchIntention() *intention.Intention {
	in := &intention.Intention{Snapshot: 1234567, Token: 42}
	for i := range 2 {
		in.Reads = append(in.Reads, bytes.Repeat([]byte{byte('a' + i)}, 16))
		in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: bytes.Repeat([]byte{byte('k' + i)}, 16), Value: make([]byte, 100)})
	}
	return in
}

// BenchmarkEnvelope is the framing alone (CRC-32C of a 300-byte payload).
func BenchmarkEnvelope(b *testing.B) {
	payload := benchIntention().AppendPayload(nil)
	enc := Encode(nil, TypeIntention, payload)
	b.Run("encode", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			buf = Encode(buf[:0], TypeIntention, payload)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := Decode(1, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkIntentionEntry is a whole 2-write intention entry: envelope and
// payload.
func BenchmarkIntentionEntry(b *testing.B) {
	in := benchIntention()
	enc := AppendIntention(nil, in)
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendIntention(buf[:0], in)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeIntentionEntry(1, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
