package seglog

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

// largeEntry is the deterministic large entry of TestLargeGroupZerosAhead:
// a group of its own larger than largeGroup.
func largeEntry() []byte {
	b := make([]byte, 96<<10) // more than largeGroup
	for j := range b {
		b[j] = byte(j*13 + 1)
	}
	return b
}

// TestLargeGroupZerosAhead covers the on-disk states of a run of large
// groups (at least largeGroup bytes each): past its first groups, a large
// group lands past the prepared zeros, in blocks allocated (fallocate) but
// never written, and writes a few pages of zeros after itself before its
// fdatasync (prepare.go, makeRoom), instead of the preparer writing twice
// its size ahead. It checks that most of the run lands there, that those
// zeros are there after the last group, that the small groups after it
// land in them (no Unprepared), and that what a crash can leave opens
// with every acknowledged entry: the large group torn at several offsets
// (its bytes after the cut zero, or the file cut there because its new
// size was not durable), its zeros ahead lost (the file ends at the
// record, or unwritten blocks follow it), and the large group whole.
func TestLargeGroupZerosAhead(t *testing.T) {
	ctx := context.Background()
	opts := prepOpts(4 << 20)
	dir := t.TempDir()
	l := mustOpen(t, dir, opts)
	const n = 30
	var want [][]byte
	for i := range n {
		if _, err := l.Append(ctx, payload(i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, payload(i))
	}
	big := largeEntry()
	// A run of large groups, the preparer idle between them: the first
	// ones land in the zeros asked for after the small groups and after the
	// first large one (as a single large group among small ones does), the
	// later ones past the zeros.
	before := l.Stats().Unprepared
	const run = 6
	for i := range run {
		if p, err := l.Append(ctx, big); err != nil || p != log.Position(len(want)) {
			t.Fatalf("Append(large %d) = %d, %v", i, p, err)
		}
		want = append(want, big)
		prepIdle(t, l)
	}
	if got := l.Stats().Unprepared - before; got < run/2 {
		t.Fatalf("a run of %d large groups: %d landed past the zeros, want at least %d", run, got, run/2)
	}
	before = l.Stats().Unprepared
	last := uint64(len(want) - 1)
	sp := spanOf(t, l, last)
	bigEnd := int64(sp.to)
	_, ready, zeroed := prepIdle(t, l)
	ahead := aheadOfLarge(int64(sp.to - sp.from))
	if ready != bigEnd+ahead || zeroed != bigEnd+ahead {
		t.Fatalf("after the large group ending at %d: ready %d, zeroed %d; want %d (its zeros ahead)", bigEnd, ready, zeroed, bigEnd+ahead)
	}
	f, err := os.Open(filepath.Join(dir, sp.path))
	if err != nil {
		t.Fatal(err)
	}
	if canPreallocate(t) {
		if de := dataEnd(f, bigEnd+ahead); de < bigEnd+ahead {
			t.Fatalf("data extents end at %d: the zeros ahead of the large group (to %d) are not written blocks", de, bigEnd+ahead)
		}
	}
	f.Close()
	// Small groups after it land in its zeros.
	for i := range 3 {
		if _, err := l.Append(ctx, payload(n+1+i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, payload(n+1+i))
	}
	if got := l.Stats().Unprepared - before; got != 0 {
		t.Fatalf("small groups after the large one: Unprepared +%d, want 0", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, opts)
	readsBack(t, l, want)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Crash states of the large group as the last one written: a copy of
	// the directory cut back to it.
	seg := func(d string) string { return filepath.Join(d, sp.path) }
	lastIsLarge := func(d string) error {
		b, err := os.ReadFile(seg(d))
		if err != nil {
			return err
		}
		clear(b[sp.to:]) // the small groups after it never written
		return os.WriteFile(seg(d), b, 0o600)
	}
	tornAt := func(cut int) func(d string) error {
		return func(d string) error {
			if err := lastIsLarge(d); err != nil {
				return err
			}
			b, err := os.ReadFile(seg(d))
			if err != nil {
				return err
			}
			clear(b[cut:sp.to])
			return os.WriteFile(seg(d), b, 0o600)
		}
	}
	cutAt := func(size int64) func(d string) error {
		return func(d string) error { return os.Truncate(seg(d), size) }
	}
	type crash struct {
		name  string
		apply func(d string) error
		keep  int
	}
	crashes := []crash{
		{"large group whole, zeros ahead", lastIsLarge, int(last) + 1},
		{"large group whole, file ends at it", cutAt(bigEnd), int(last) + 1},
		{"large group whole, unwritten blocks after it", func(d string) error {
			if err := os.Truncate(seg(d), bigEnd); err != nil {
				return err
			}
			f, err := os.OpenFile(seg(d), os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			return preallocate(f, bigEnd+4*stepSize)
		}, int(last) + 1},
		{"torn in its header", tornAt(sp.from + 3), int(last)},
		{"torn a page in", tornAt(sp.from + 4096), int(last)},
		{"torn one byte short", tornAt(sp.to - 1), int(last)},
		{"file cut inside it", cutAt(int64(sp.from + (sp.to-sp.from)/2)), int(last)},
	}
	for _, c := range crashes {
		t.Run(c.name, func(t *testing.T) {
			d := copyDir(t, dir)
			if err := c.apply(d); err != nil {
				t.Fatal(err)
			}
			l, err := Open(d, opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			readsBack(t, l, want[:c.keep])
			if _, err := l.Read(ctx, log.Position(c.keep)); !errors.Is(err, log.ErrNotWritten) {
				t.Fatalf("Read(%d) = %v, want ErrNotWritten", c.keep, err)
			}
			more := [][]byte{[]byte("after"), big, []byte("and after")}
			for i, b := range more {
				if p, err := l.Append(ctx, b); err != nil || p != log.Position(c.keep+i) {
					t.Fatalf("Append = %d, %v; want %d", p, err, c.keep+i)
				}
			}
			prepIdle(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, d, opts)
			defer l.Close()
			readsBack(t, l, append(append([][]byte(nil), want[:c.keep]...), more...))
			if got, err := l.Read(ctx, log.Position(c.keep+1)); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("the large entry appended after reopen: %d bytes, %v", len(got), err)
			}
		})
	}
}
