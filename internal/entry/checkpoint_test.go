package entry

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestCheckpointRoundTrip(t *testing.T) {
	hdr := NewHeader(100, 1024, 4096)
	data := AppendCut(nil, 42, hdr)
	typ, payload, err := Decode(9, data)
	if err != nil || typ != TypeCheckpoint {
		t.Fatalf("cut: %v %v", typ, err)
	}
	if tok, h, err := DecodeCut(payload); err != nil || tok != 42 || *h != *hdr {
		t.Fatalf("cut token %d %v %v", tok, h, err)
	}
	m := &Marker{Cut: 10, Nodes: 300, Bytes: 12345, Chunks: []ChunkRef{{11, 0}, {14, 100}, {20, 250}}}
	typ, payload, err = Decode(30, AppendMarker(nil, m))
	if err != nil || typ != TypeCheckpoint {
		t.Fatalf("marker: %v", err)
	}
	got, err := DecodeMarker(payload)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("marker round trip: %+v %v", got, err)
	}
	for _, c := range []struct {
		n   uint64
		pos uint64
		off uint32
	}{{0, 11, 0}, {99, 11, 99}, {100, 14, 0}, {249, 14, 149}, {299, 20, 49}} {
		pos, off, err := got.Locate(c.n)
		if err != nil || pos != c.pos || off != c.off {
			t.Fatalf("locate %d: %d %d %v", c.n, pos, off, err)
		}
	}
	if _, _, err := got.Locate(300); !errors.Is(err, ErrCheckpointMalformed) {
		t.Fatalf("locate past the end: %v", err)
	}
	dst, start := Begin(nil, 8)
	dst = BeginChunk(dst, 77)
	dst = append(dst, 1, 2, 3)
	_, payload, err = Decode(3, Seal(dst, start, TypeCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	first, ai, err := DecodeChunk(payload)
	if err != nil || first != 77 || !bytes.Equal(ai, []byte{1, 2, 3}) {
		t.Fatalf("chunk: %d %v %v", first, ai, err)
	}
}

func TestMarkerRejectsDisorder(t *testing.T) {
	for _, m := range []*Marker{
		{Cut: 10, Nodes: 5, Chunks: []ChunkRef{{11, 1}}},          // does not start at 0
		{Cut: 10, Nodes: 5, Chunks: []ChunkRef{{11, 0}, {11, 2}}}, // positions not ascending
		{Cut: 10, Nodes: 5, Chunks: []ChunkRef{{11, 0}, {12, 0}}}, // firsts not ascending
		{Cut: 10, Nodes: 5, Chunks: []ChunkRef{{9, 0}}},           // before the cut
		{Cut: 10, Nodes: 5, Chunks: []ChunkRef{{11, 0}, {12, 5}}}, // past the nodes
		{Cut: 10, Nodes: 5}, // nodes without chunks
		{Cut: 10, Nodes: 0, Chunks: []ChunkRef{{11, 0}}}, // chunks without nodes
	} {
		_, payload, err := Decode(1, AppendMarker(nil, m))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeMarker(payload); !errors.Is(err, ErrCheckpointMalformed) {
			t.Fatalf("%+v accepted: %v", m, err)
		}
	}
	if _, _, err := DecodeCut([]byte{CheckpointCut, 1}); !errors.Is(err, ErrCheckpointMalformed) {
		t.Fatalf("empty token accepted: %v", err)
	}
}

func FuzzCheckpoint(f *testing.F) {
	_, p, _ := Decode(0, AppendMarker(nil, &Marker{Cut: 3, Nodes: 9, Bytes: 100, Chunks: []ChunkRef{{4, 0}, {6, 5}}}))
	f.Add(p)
	_, p, _ = Decode(0, AppendCut(nil, 7, NewHeader(10, 20, 30)))
	f.Add(p)
	f.Add([]byte{CheckpointChunk, 5, 1, 2})
	f.Fuzz(func(t *testing.T, payload []byte) {
		k, err := CheckpointKind(payload)
		if err != nil {
			return
		}
		switch k {
		case CheckpointCut:
			if tok, h, err := DecodeCut(payload); err == nil {
				_, p, _ := Decode(0, AppendCut(nil, tok, h))
				if !bytes.Equal(p, payload) {
					t.Fatalf("cut re-encodes differently")
				}
			}
		case CheckpointMarker:
			m, err := DecodeMarker(payload)
			if err != nil {
				return
			}
			_, p, _ := Decode(0, AppendMarker(nil, m))
			m2, err := DecodeMarker(p)
			if err != nil || !reflect.DeepEqual(m, m2) {
				t.Fatalf("marker does not round-trip: %v", err)
			}
			for n := uint64(0); n < min(m.Nodes, 64); n++ {
				if _, _, err := m.Locate(n); err != nil {
					t.Fatalf("locate %d: %v", n, err)
				}
			}
		case CheckpointChunk:
			DecodeChunk(payload)
		}
	})
}
