package afterimage

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecode checks that Decode never panics, that whatever it refuses is
// ErrMalformed (and refused by DecodeNoCopy and DecodeInto too), and that
// whatever it accepts validates, keeps Base at most Intention and no value or
// tombstone in a node whose value is in the intention, re-encodes to a
// payload that decodes to an equal afterimage, and is a fixed point of
// encoding. DecodeNoCopy, DecodeInto and DecodeNode must agree with Decode.
// Seeds are in testdata/fuzz/FuzzDecode (see fuzzSeeds), plus a few random
// afterimages.
func FuzzDecode(f *testing.F) {
	f.Add(typical(3).AppendPayload(nil))
	f.Add(typicalInIntention(3).AppendPayload(nil))
	f.Add(kinds().AppendPayload(nil))
	r := rand.New(rand.NewPCG(1, 4))
	for added := 0; added < 8; {
		if a := randAfterimage(r); a.EncodedSize() <= 2048 {
			f.Add(a.AppendPayload(nil))
			added++
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if _, ncErr := DecodeNoCopy(data); ncErr == nil {
				t.Fatalf("DecodeNoCopy accepts what Decode refuses")
			}
			var into Afterimage
			if intoErr := DecodeInto(&into, data); intoErr == nil {
				t.Fatalf("DecodeInto accepts what Decode refuses")
			}
			// DecodeNode and NodeIndex may succeed on a prefix; they must
			// not panic, and their errors wrap ErrMalformed.
			x, xerr := NewNodeIndex(data)
			if xerr != nil && !errors.Is(xerr, ErrMalformed) {
				t.Fatalf("NewNodeIndex: error %v does not wrap ErrMalformed", xerr)
			}
			for off := range uint32(4) {
				if _, err := headNode(data, off); err != nil && !errors.Is(err, ErrMalformed) {
					t.Fatalf("Head path, node %d: error %v does not wrap ErrMalformed", off, err)
				}
				if _, err := DecodeNode(data, off); err != nil && !errors.Is(err, ErrMalformed) {
					t.Fatalf("DecodeNode(%d): error %v does not wrap ErrMalformed", off, err)
				}
				if x != nil {
					if _, err := x.Node(3 - off); err != nil && !errors.Is(err, ErrMalformed) {
						t.Fatalf("NodeIndex.Node(%d): error %v does not wrap ErrMalformed", 3-off, err)
					}
				}
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("decoded afterimage does not validate: %v", err)
		}
		if a.Base > a.Intention {
			t.Fatalf("base %d after the intention %d", a.Base, a.Intention)
		}
		for i := range a.Nodes {
			if nd := &a.Nodes[i]; nd.ValueInIntention && (nd.Value != nil || nd.Tombstone) {
				t.Fatalf("node %d: value in the intention, with value %q, tombstone %t", i, nd.Value, nd.Tombstone)
			}
		}
		nc, err := DecodeNoCopy(data)
		if err != nil || !reflect.DeepEqual(nc, a) {
			t.Fatalf("DecodeNoCopy differs (err %v)", err)
		}
		into := Afterimage{Intention: 1, Base: 1, Nodes: make([]Node, 2, 8)}
		if err := DecodeInto(&into, data); err != nil {
			t.Fatalf("DecodeInto: %v", err)
		}
		if len(into.Nodes) == 0 {
			into.Nodes = nil
		}
		if !reflect.DeepEqual(&into, a) {
			t.Fatalf("DecodeInto differs")
		}
		for i := range a.Nodes {
			nd, err := DecodeNode(data, uint32(i))
			if err != nil || !reflect.DeepEqual(nd, a.Nodes[i]) {
				t.Fatalf("DecodeNode(%d) differs (err %v)", i, err)
			}
			if h, _ := ReadHead(data[:min(len(data), MaxHeadSize)]); h.HasOffsets {
				if nd, err := headNode(data, uint32(i)); err != nil || !reflect.DeepEqual(nd, a.Nodes[i]) {
					t.Fatalf("Head path, node %d differs (err %v)", i, err)
				}
			}
		}
		// NodeIndex reads the same nodes, in any order (last first, so
		// that the first read parses all the way).
		x, err := NewNodeIndex(data)
		if err != nil || x.Len() != len(a.Nodes) || x.Intention() != a.Intention || x.Base() != a.Base {
			t.Fatalf("NewNodeIndex: %v", err)
		}
		for i := len(a.Nodes) - 1; i >= 0; i-- {
			nd, err := x.Node(uint32(i))
			if err != nil || !reflect.DeepEqual(nd, a.Nodes[i]) {
				t.Fatalf("NodeIndex.Node(%d) differs (err %v)", i, err)
			}
		}
		if _, err := x.Node(uint32(len(a.Nodes))); !errors.Is(err, ErrMalformed) {
			t.Fatalf("NodeIndex.Node past the end: err %v", err)
		}
		if _, err := DecodeNode(data, uint32(len(a.Nodes))); !errors.Is(err, ErrMalformed) {
			t.Fatalf("DecodeNode past the end: err %v", err)
		}
		_ = a.PointerCounts()
		enc := a.AppendPayload(nil)
		if len(enc) != a.EncodedSize() {
			t.Fatalf("EncodedSize %d, encoded %d", a.EncodedSize(), len(enc))
		}
		if a.maxSize() < len(enc) {
			t.Fatalf("maxSize %d below the encoded size %d", a.maxSize(), len(enc))
		}
		// The canonical form is never longer than the input, except that a
		// key or value sent as a fixstr (1-byte header, accepted like the
		// msgpack library accepts it) is written back as bin8 (2 bytes).
		if len(enc) > len(data)+2*len(a.Nodes)+OffsetsSize(len(a.Nodes)) { // the input may have had no offsets
			t.Fatalf("canonical encoding of %d bytes longer than the %d-byte input", len(enc), len(data))
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, a) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", again, a)
		}
		if enc2 := again.AppendPayload(nil); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not a fixed point")
		}
	})
}

// fuzzSeed is a file of the seed corpus of FuzzDecode.
type fuzzSeed struct {
	data []byte // nil: a file kept as it is, not generated
	ok   bool   // whether it decodes
}

// fuzzSeeds are the seed corpus of FuzzDecode, by file name.
// TestFuzzSeeds checks testdata/fuzz/FuzzDecode against them; after a
// format change, CRUZDB_UPDATE_SEEDS=1 go test -run TestFuzzSeeds rewrites
// the generated ones.
func fuzzSeeds() map[string]fuzzSeed {
	enc := func(a *Afterimage) []byte { return a.AppendPayload(nil) }
	typ3 := enc(typical(3))
	baseAfter := kinds()
	baseAfter.Base = baseAfter.Intention + 1
	withValue := typicalInIntention(3)
	withValue.Nodes[1].Value = []byte("v")
	withTomb := typicalInIntention(3)
	withTomb.Nodes[2].Tombstone = true
	// typical(3) as written before the node offsets: a 3-field record.
	noOffsets := append([]byte{0x93}, typ3[1:len(typ3)-OffsetsSize(3)]...)
	badOffset := bytes.Clone(typ3)
	badOffset[len(badOffset)-1]++ // node 2 starts a byte later than it does
	offsetsMissing := append([]byte{0x94}, noOffsets[1:]...)
	return map[string]fuzzSeed{
		"seed-empty-tree":    {enc(&Afterimage{Intention: 9, Base: 9}), true},
		"seed-empty-base0":   {enc(&Afterimage{Intention: 9}), true},
		"seed-typical3":      {typ3, true},
		"seed-typical17":     {enc(typical(17)), true},
		"seed-in-intention":  {enc(typicalInIntention(5)), true},
		"seed-kinds":         {enc(kinds()), true},
		"seed-lenient":       {lenientPayload(), true},
		"seed-truncated":     {typ3[:len(typ3)*2/3], false},
		"seed-height0":       {payload(node(nf{fHeight: {0}})), false},
		"seed-huge-count":    {[]byte{0x93, 0x05, 0x04, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}, false},
		"seed-self-forward":  {payload(node(nil), node(nf{fRight: {0x92, 1, 5}})), false},
		"seed-base-after":    {enc(baseAfter), false},
		"seed-vii-value":     {enc(withValue), false},
		"seed-vii-tombstone": {enc(withTomb), false},
		"seed-vii-not-bool":  {payload(node(nil), node(nf{fInIntention: {0xc0}})), false},
		"seed-node9":         {payload(rawNode(nodeFieldBytes()[:9])), false},
		"seed-no-offsets":    {noOffsets, true},
		"seed-bad-offset":    {badOffset, false},
		"seed-no-room":       {offsetsMissing, false},
		// typical(3) in the format before Base and value-in-intention.
		"seed-old-format": {nil, false},
	}
}

const corpusHeader = "go test fuzz v1\n"

// corpusFile is the content of a corpus file holding data.
func corpusFile(data []byte) []byte {
	return []byte(corpusHeader + "[]byte(" + strconv.Quote(string(data)) + ")\n")
}

// parseCorpusFile returns the []byte value of a one-value corpus file.
func parseCorpusFile(b []byte) ([]byte, error) {
	s, ok := strings.CutPrefix(string(b), corpusHeader)
	if !ok {
		return nil, errors.New("no corpus header")
	}
	s = strings.TrimSpace(s)
	s, ok = strings.CutPrefix(s, "[]byte(")
	if !ok {
		return nil, errors.New("not one []byte value")
	}
	s, ok = strings.CutSuffix(s, ")")
	if !ok {
		return nil, errors.New("not one []byte value")
	}
	v, err := strconv.Unquote(s)
	return []byte(v), err
}

// TestFuzzSeeds checks that the seed corpus is in the current format:
// every generated seed's file holds what fuzzSeeds generates, and every seed
// decodes or is refused as fuzzSeeds says. Files the fuzzer added are only
// checked to parse.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	update := os.Getenv("CRUZDB_UPDATE_SEEDS") != ""
	seeds := fuzzSeeds()
	for name, s := range seeds {
		path := filepath.Join(dir, name)
		if update && s.data != nil {
			if err := os.WriteFile(path, corpusFile(s.data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		data, err := parseCorpusFile(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if s.data != nil && !bytes.Equal(data, s.data) {
			t.Errorf("%s is stale; rewrite it with CRUZDB_UPDATE_SEEDS=1 go test -run TestFuzzSeeds", name)
		}
		_, err = Decode(data)
		switch {
		case s.ok && err != nil:
			t.Errorf("%s: %v", name, err)
		case !s.ok && !errors.Is(err, ErrMalformed):
			t.Errorf("%s: decodes (err %v), want ErrMalformed", name, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := seeds[e.Name()]; ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseCorpusFile(b); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}

// headNode reads node off the way a ranged load does: the header from the
// payload's first bytes, then the offsets entries, then the node's bytes.
func headNode(payload []byte, off uint32) (Node, error) {
	h, err := ReadHead(payload[:min(len(payload), MaxHeadSize)])
	if err != nil {
		return Node{}, err
	}
	es, ee, err := h.EntryRange(len(payload), off)
	if err != nil {
		return Node{}, err
	}
	start, end, sum, err := h.NodeSpan(payload[es:ee], len(payload), off)
	if err != nil {
		return Node{}, err
	}
	return DecodeNodeBytes(payload[start:end], off, sum)
}
