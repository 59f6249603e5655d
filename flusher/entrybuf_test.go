package flusher

import (
	"runtime"
	"testing"
)

// TestEntryBufsSurviveCollections checks that afterimage buffers given
// back are handed out again after garbage collections (which empty a
// sync.Pool), up to the kept counts and sizes, small and large, each kind
// first to the entries of its size; and that a buffer too large to keep is
// still accepted.
func TestEntryBufsSurviveCollections(t *testing.T) {
	// Drain what other tests left.
	for len(keptEntryBufs) > 0 {
		<-keptEntryBufs
	}
	for len(keptLargeEntryBufs) > 0 {
		<-keptLargeEntryBufs
	}
	give := func(n, c int) []*[]byte {
		var given []*[]byte
		for range n {
			b := new([]byte)
			*b = make([]byte, 0, c)
			given = append(given, b)
			putEntryBuf(b)
		}
		return given
	}
	small := give(keptEntryBufCount, 4096)
	large := give(keptLargeEntryBufCount, keptLargeEntryBufMax)
	big := new([]byte)
	*big = make([]byte, 0, keptLargeEntryBufMax+1)
	putEntryBuf(big) // not kept across collections; must not block
	runtime.GC()
	runtime.GC()
	seen := map[*[]byte]bool{}
	for range keptLargeEntryBufCount {
		b := getEntryBuf(keptEntryBufMax + 1)
		if cap(*b) != keptLargeEntryBufMax || len(*b) != 0 {
			t.Fatalf("a large entry got a buffer of len %d cap %d, want an empty kept one of %d", len(*b), cap(*b), keptLargeEntryBufMax)
		}
		seen[b] = true
	}
	for range keptEntryBufCount {
		b := getEntryBuf(100)
		if cap(*b) != 4096 || len(*b) != 0 {
			t.Fatalf("a small entry got a buffer of len %d cap %d, want an empty kept one of 4096", len(*b), cap(*b))
		}
		seen[b] = true
	}
	for _, b := range append(small, large...) {
		if !seen[b] {
			t.Fatal("a kept buffer was not handed out again after two collections")
		}
	}
	// With the large ones gone, a large entry takes a small kept one.
	s := new([]byte)
	*s = make([]byte, 0, 4096)
	putEntryBuf(s)
	if b := getEntryBuf(keptEntryBufMax + 1); b != s {
		t.Fatal("a large entry did not take the small kept buffer when no large one was left")
	}
}
