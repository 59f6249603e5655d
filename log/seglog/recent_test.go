package seglog

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

// TestRecentRing adds groups of random sizes to the ring and checks that
// every record it answers for is the one added (never bytes of a group
// overwritten since), that the newest group is always answered, that a
// group of another segment or larger than the ring is not, and that the
// ring gives up groups only when it must (it holds at least half its size
// of the newest groups).
func TestRecentRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var c recent
	add := func(s *segment, from uint32, b []byte) {
		if r := c.reserve(s, len(b)); r != nil {
			_ = append(r, b...)
			c.publish(s, from, len(b))
		}
	}
	s1, s2 := &segment{}, &segment{}
	type grp struct {
		from  uint32
		recs  []uint64 // positions of the group's records
		offs  []uint32
		datas [][]byte
	}
	var groups []grp
	var off uint32 = segHeaderSize
	var pos uint64
	for range 150 {
		g := grp{from: off}
		var b []byte
		for range 1 + rng.IntN(4) {
			size := rng.IntN(100_000)
			if rng.IntN(10) == 0 {
				size = 0
			}
			d := make([]byte, size)
			for i := range d {
				d[i] = byte(pos) + byte(i)
			}
			g.offs = append(g.offs, off+uint32(len(b)))
			g.recs = append(g.recs, pos)
			g.datas = append(g.datas, d)
			b = appendRecord(b, 0, kindData, pos, off, d)
			pos++
		}
		add(s1, off, b)
		off += uint32(len(b))
		groups = append(groups, g)

		held := 0
		for gi := len(groups) - 1; gi >= 0; gi-- {
			g := groups[gi]
			for i, p := range g.recs {
				got, size, ok := c.read(s1, p, g.offs[i], 0, math.MaxInt)
				if gi == len(groups)-1 && !ok {
					t.Fatalf("newest group: position %d not answered", p)
				}
				if ok && (!bytes.Equal(got, g.datas[i]) || size != len(g.datas[i])) {
					t.Fatalf("position %d: ring answered other bytes", p)
				}
				if part, size, ok := c.read(s1, p, g.offs[i], 7, 5); ok {
					d := g.datas[i][min(7, len(g.datas[i])):]
					d = d[:min(5, len(d))]
					if !bytes.Equal(part, d) || size != len(g.datas[i]) {
						t.Fatalf("position %d: range [7, 12) of %d bytes: %q, size %d", p, len(g.datas[i]), part, size)
					}
				}
				if ok {
					held += recHeaderSize + len(g.datas[i])
				}
			}
		}
		if total := int(off - groups[0].from); held < min(total, recentBytes/2-100_000*4) {
			t.Fatalf("ring holds %d bytes of the newest groups, want at least %d", held, min(total, recentBytes/2-100_000*4))
		}
		if _, _, ok := c.read(s2, g.recs[0], g.offs[0], 0, 1); ok {
			t.Fatal("ring answered for another segment")
		}
		if _, _, ok := c.read(s1, g.recs[0]+1000, g.offs[0], 0, 1); ok {
			t.Fatal("ring answered for a position its record does not hold")
		}
	}
	big := appendRecord(nil, 0, kindData, pos, off, make([]byte, recentBytes))
	add(s1, off, big)
	if _, _, ok := c.read(s1, pos, off, 0, 1); ok {
		t.Fatal("ring answered for a group larger than itself")
	}
	if _, _, ok := c.read(s1, groups[len(groups)-1].recs[0], groups[len(groups)-1].offs[0], 0, 1); ok {
		t.Fatal("ring kept groups across a group too large for it")
	}
}

// TestReadFollowsAppend: entries just appended read back from the ring,
// entries appended long before from the file, and both are what was
// appended, across segment rolls and a reopen.
func TestReadFollowsAppend(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{NoSync: true, SegmentSize: 8 << 20}
	l := mustOpen(t, dir, opts)
	ctx := context.Background()
	entry := func(p log.Position) []byte {
		return bytes.Repeat(fmt.Appendf(nil, "%d,", p), (1+int(p%7))*500)
	}
	inRing := func(l *Log, p log.Position) bool {
		s, _, from, _, err := l.locate(ctx, p)
		if err != nil {
			t.Fatalf("locate %d: %v", p, err)
		}
		defer s.fileMu.RUnlock()
		_, _, ok := l.recent.read(s, uint64(p), from, 0, 1)
		return ok
	}
	var last log.Position
	for i := range 600 {
		p, err := l.Append(ctx, entry(log.Position(i)))
		if err != nil {
			t.Fatal(err)
		}
		if p != log.Position(i) {
			t.Fatalf("append %d at %d", i, p)
		}
		if !inRing(l, p) {
			t.Fatalf("position %d, just appended, not in the ring", p)
		}
		got, err := l.Read(ctx, p)
		if err != nil || !bytes.Equal(got, entry(p)) {
			t.Fatalf("read %d: %v (equal: %v)", p, err, bytes.Equal(got, entry(p)))
		}
		got[0] ^= 0xff // the caller owns what Read returns
		last = p
	}
	if inRing(l, 0) {
		t.Fatal("position 0 still in the ring after 600 appends of up to 28 KB in 8 MiB segments")
	}
	check := func(l *Log) {
		for p := log.Position(0); p <= last; p++ {
			got, err := l.Read(ctx, p)
			if err != nil || !bytes.Equal(got, entry(p)) {
				t.Fatalf("read %d: %v", p, err)
			}
			part, size, err := l.ReadRange(ctx, p, 3, 10)
			if err != nil || size != len(entry(p)) || !bytes.Equal(part, entry(p)[3:13]) {
				t.Fatalf("read range of %d: %q, %d, %v", p, part, size, err)
			}
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, opts)
	defer l.Close()
	if inRing(l, last) {
		t.Fatal("ring not empty after reopen")
	}
	check(l)

	// A record larger than ReadRange's whole-read limit, from the ring.
	big := bytes.Repeat([]byte("0123456789"), 10_000)
	p, err := l.Append(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	if !inRing(l, p) {
		t.Fatalf("position %d, just appended, not in the ring", p)
	}
	part, size, err := l.ReadRange(ctx, p, 70_003, 12)
	if err != nil || size != len(big) || string(part) != "345678901234" {
		t.Fatalf("read range of the large entry: %q, %d, %v", part, size, err)
	}
}
