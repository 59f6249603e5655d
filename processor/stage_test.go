package processor

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
)

// TestStageKeepsAfterimageHeads: a group staged for early application
// keeps its intentions whole and only the frame and header of its
// afterimages (not their nodes), from which replay decodes the same header
// as from the whole entry.
func TestStageKeepsAfterimageHeads(t *testing.T) {
	in := entry.AppendIntention(nil, &intention.Intention{Snapshot: 1, Token: 7,
		Ops: []intention.Op{{Kind: intention.OpPut, Key: []byte("k"), Value: []byte("v")}}})
	var nodes []afterimage.Node
	for i := range 20 {
		nodes = append(nodes, afterimage.Node{Key: []byte(strings.Repeat("k", 16) + string(rune('a'+i))), Value: bytes.Repeat([]byte("v"), 100),
			Pos: 3, MaxPos: 3, MinTomb: afterimage.NoTombstone, Height: 1})
	}
	ai := entry.AppendAfterimage(nil, &afterimage.Afterimage{Intention: 3, Base: 3, Nodes: nodes})
	if len(ai) <= headPrefix {
		t.Fatalf("test afterimage of %d bytes, want more than %d", len(ai), headPrefix)
	}
	st := stage(4, [][]byte{in, ai}, len(in)+headPrefix)
	if len(st) != 2 || st[0].pos != 4 || st[1].pos != 5 {
		t.Fatalf("staged %+v", st)
	}
	if !bytes.Equal(st[0].data, in) || st[0].size != len(in) {
		t.Fatalf("intention staged as %d of %d bytes, want it whole", len(st[0].data), len(in))
	}
	if len(st[1].data) != headPrefix || st[1].size != len(ai) || !bytes.Equal(st[1].data, ai[:headPrefix]) {
		t.Fatalf("afterimage staged as %d bytes (size %d), want its first %d of %d", len(st[1].data), st[1].size, headPrefix, len(ai))
	}
	var r Runner
	var part, whole item
	part.pos, whole.pos = 5, 5
	r.decodePrefix(&part, st[1].data, st[1].size)
	r.decode(&whole, ai)
	if part.fail != nil || whole.fail != nil || part.typ != whole.typ || part.size != whole.size || part.ai == nil || whole.ai == nil || *part.ai != *whole.ai {
		t.Fatalf("decoded from the head: %+v (%v), from the whole entry: %+v (%v)", part.ai, part.fail, whole.ai, whole.fail)
	}
}
