package seglog

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

// BenchmarkOpenReused opens a closed log whose last segment reuses a full
// 64 MiB file: a few records of the new life, then the former life's
// records to the end of the file, all of which the torn-tail scan must
// rule out. The former life's entries look like cruzdb's (small integers,
// so zero bytes everywhere), the worst case for the scan's header filter.
func BenchmarkOpenReused(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	opts := &Options{NoSync: true, forcePrepare: true, SegmentSize: 64 << 20}
	l, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	entry := make([]byte, 300)
	var next uint64
	appendUntil := func(seq uint64) {
		for activeSeg(l).seq != seq {
			for i := 0; i+8 <= len(entry); i += 16 {
				binary.LittleEndian.PutUint64(entry[i:], next*uint64(i+1))
			}
			p, err := l.Append(ctx, entry)
			if err != nil {
				b.Fatal(err)
			}
			next = uint64(p) + 1
		}
	}
	appendUntil(2)
	if err := l.Trim(ctx, log.Position(next)); err != nil {
		b.Fatal(err)
	}
	appendUntil(3)
	if st := l.Stats(); st.Recycled != 1 {
		b.Fatalf("Recycled = %d, want 1 (the last segment must reuse segment 1's file)", st.Recycled)
	}
	for range 10 {
		if _, err := l.Append(ctx, entry); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		l, err := Open(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
