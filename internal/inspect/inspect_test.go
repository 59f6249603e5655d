package inspect

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
)

// fakeLog is a log.Log whose every position is set by hand.
type fakeLog struct {
	data  map[uint64][]byte
	junk  map[uint64]bool
	trim  uint64
	tail  uint64
	reads int
}

func (l *fakeLog) Append(context.Context, []byte) (log.Position, error) {
	return 0, fmt.Errorf("read-only")
}
func (l *fakeLog) Fill(context.Context, log.Position) error { return fmt.Errorf("read-only") }
func (l *fakeLog) Trim(context.Context, log.Position) error { return fmt.Errorf("read-only") }
func (l *fakeLog) Close() error                             { return nil }
func (l *fakeLog) Tail(context.Context) (log.Position, error) {
	return log.Position(l.tail), nil
}
func (l *fakeLog) Read(_ context.Context, p log.Position) ([]byte, error) {
	l.reads++
	switch {
	case uint64(p) < l.trim:
		return nil, log.ErrTrimmed
	case l.junk[uint64(p)]:
		return nil, log.ErrFilled
	}
	if d, ok := l.data[uint64(p)]; ok {
		return bytes.Clone(d), nil
	}
	return nil, log.ErrNotWritten
}

func TestInspectLog(t *testing.T) {
	in := &intention.Intention{
		Snapshot: 4,
		Token:    7,
		Reads:    [][]byte{[]byte("r1"), []byte("r2")},
		Ranges:   []intention.Range{{Lo: []byte("a"), Hi: nil}},
		Ops: []intention.Op{
			{Kind: intention.OpPut, Key: []byte("k1"), Value: []byte("v")},
			{Kind: intention.OpPut, Key: []byte("k2"), Value: []byte("v")},
			{Kind: intention.OpDelete, Key: []byte("k3")},
			{Kind: intention.OpDeleteRange, Key: []byte("m"), Value: []byte("n")},
		},
	}
	ai := &afterimage.Afterimage{Intention: 5, Nodes: []afterimage.Node{
		{Key: []byte("k1"), Value: []byte("v"), Pos: 5, MaxPos: 5, Height: 1},
		{Key: []byte("k2"), Value: []byte("v"), Pos: 5, MaxPos: 5, Height: 2, Left: afterimage.SelfPtr(0), Right: afterimage.IntentionPtr(3, 1)},
	}}
	corrupt := entry.AppendIntention(nil, in)
	corrupt[len(corrupt)-1] ^= 0xff
	l := &fakeLog{
		data: map[uint64][]byte{
			3:  entry.EncodeHeader(entry.NewHeader(1<<20, 16<<10, 8<<20)),
			5:  entry.AppendIntention(nil, in),
			6:  entry.AppendAfterimage(nil, ai),
			8:  corrupt,
			9:  []byte("not an entry at all"),
			10: entry.Encode(nil, entry.TypeCheckpoint, []byte{0x90}),
			11: entry.AppendIntention(nil, in),
			12: entry.AppendCut(nil, 1, entry.NewHeader(1<<20, 16<<10, 8<<20)),
			13: entry.AppendMarker(nil, &entry.Marker{Cut: 12, Nodes: 5, Bytes: 300, Chunks: []entry.ChunkRef{{Pos: 13, First: 0}}}),
		},
		junk: map[uint64]bool{7: true},
		trim: 3,
		tail: 14,
	}
	var out bytes.Buffer
	if err := Log(context.Background(), l, &out, 0, nil, true); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	t.Log("\n" + got)
	for _, want := range []string{
		"log tail 14\n",
		"12\tcheckpoint\tcut",
		"13\tcheckpoint\tmarker of cut 12: image complete, 5 nodes in 1 chunks",
		"0-2\ttrimmed\n",
		"3\theader\tformat 1, conflict window 1048576, max key 16384, max value 8388608\n",
		"4\thole (not written)\n",
		"5\tintention\tsnapshot 4, reads 2, ranges 1, ops 4 (put 2, delete 1, delete range 1)",
		"\t\tdelete range [\"m\", \"n\")\n",
		"\t\tread \"r1\"\n",
		"\t\trange [\"a\", +inf)\n",
		"\t\tdelete \"k3\"\n",
		"6\tafterimage\tintention 5, nodes 2, pointers nil 2 self 1 afterimage 0 intention 1",
		"7\tjunk\n",
		"8\tcorrupt\t",
		"log position 8: corrupt log entry",
		"9\tcorrupt\t",
		"10\tcheckpoint\t",
		"11\tintention\t",
		"summary: header 1, intentions 2, afterimages 1 (nodes 2; pointers nil 2 self 1 afterimage 0 intention 1), checkpoints 3, junk 1, holes 1, trimmed 3, corrupt 2, other 0\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// from and to bound what is read.
	six := uint64(6)
	out.Reset()
	l.reads = 0
	if err := Log(context.Background(), l, &out, 5, &six, false); err != nil {
		t.Fatal(err)
	}
	if l.reads != 2 || strings.Contains(out.String(), "\theader") || !strings.Contains(out.String(), "6\tafterimage") || strings.Contains(out.String(), "read \"r1\"") {
		t.Fatalf("--from 5 --to 6 read %d positions:\n%s", l.reads, out.String())
	}
}
