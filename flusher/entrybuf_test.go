package flusher

import (
	"runtime"
	"testing"
)

// TestEntryBufsSurviveCollections checks that afterimage buffers given
// back are handed out again after garbage collections (which empty a
// sync.Pool), up to the kept count and size, and that a buffer too large
// to keep is still accepted.
func TestEntryBufsSurviveCollections(t *testing.T) {
	// Drain what other tests left.
	for len(keptEntryBufs) > 0 {
		<-keptEntryBufs
	}
	var given []*[]byte
	for range keptEntryBufCount {
		b := new([]byte)
		*b = make([]byte, 0, 4096)
		given = append(given, b)
		putEntryBuf(b)
	}
	big := new([]byte)
	*big = make([]byte, 0, keptEntryBufMax+1)
	putEntryBuf(big) // not kept across collections; must not block
	runtime.GC()
	runtime.GC()
	seen := map[*[]byte]bool{}
	for range keptEntryBufCount {
		b := getEntryBuf()
		if cap(*b) != 4096 || len(*b) != 0 {
			t.Fatalf("got a buffer of len %d cap %d, want an empty kept one of 4096", len(*b), cap(*b))
		}
		seen[b] = true
	}
	for _, b := range given {
		if !seen[b] {
			t.Fatal("a kept buffer was not handed out again after two collections")
		}
	}
}
