package afterimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/cruzlog/cruzdb/internal/testutil"
)

func randOff(r *rand.Rand) uint32 {
	if r.IntN(10) == 0 {
		return math.MaxUint32 - uint32(r.IntN(3))
	}
	return uint32(testutil.RandUint(r) % (1 << 20))
}

// randPtr returns a valid pointer for node i.
func randPtr(r *rand.Rand, i int) Ptr {
	switch r.IntN(4) {
	case 0:
		return Ptr{}
	case 1:
		if i > 0 {
			return SelfPtr(uint32(r.IntN(i)))
		}
		return Ptr{}
	case 2:
		return AfterimagePtr(testutil.RandUint(r), randOff(r))
	}
	return IntentionPtr(testutil.RandUint(r), randOff(r))
}

// randBase returns a valid Base for an afterimage of intention in: 0, in
// itself, just behind it, or anywhere up to it.
func randBase(r *rand.Rand, in uint64) uint64 {
	switch r.IntN(5) {
	case 0:
		return 0
	case 1:
		return in
	case 2:
		return in - min(in, uint64(1+r.IntN(3)))
	}
	b := testutil.RandUint(r)
	if in != math.MaxUint64 {
		b %= in + 1
	}
	return b
}

func randAfterimage(r *rand.Rand) *Afterimage {
	a := &Afterimage{Intention: testutil.RandUint(r)}
	a.Base = randBase(r, a.Intention)
	n := r.IntN(6)
	switch r.IntN(10) {
	case 0:
		n = 0
	case 1:
		n = 16 + r.IntN(40)
	}
	if n > 0 {
		a.Nodes = make([]Node, n)
	}
	for i := range a.Nodes {
		nd := &a.Nodes[i]
		nd.Key = testutil.RandBytes(r, true)
		switch x := r.IntN(8); {
		case x < 2:
			nd.Tombstone = true
			if r.IntN(5) == 0 {
				nd.Value = testutil.RandBytes(r, true)
			}
		case x < 4:
			// The value is in the intention: no value, no tombstone.
			nd.ValueInIntention = true
		default:
			nd.Value = testutil.RandBytes(r, true)
		}
		nd.Pos = testutil.RandUint(r)
		if !nd.Tombstone && !nd.ValueInIntention && nd.Pos < math.MaxUint64-1000 && r.IntN(3) == 0 {
			// Written before a cut: the value is a node of its image
			// (and maybe here too).
			nd.ValueCut = nd.Pos + 1 + r.Uint64N(1000)
			nd.ValueNum = r.Uint32()
			if r.IntN(2) == 0 {
				nd.Value = nil
			}
		}
		nd.MaxPos = testutil.RandUint(r)
		nd.MinTomb = NoTombstone
		if r.IntN(3) == 0 {
			nd.MinTomb = testutil.RandUint(r)
		}
		nd.Height = uint8(1 + r.IntN(255))
		nd.Left = randPtr(r, i)
		nd.Right = randPtr(r, i)
		if nd.Left.Kind != PtrNil {
			nd.LeftCount = uint32(1 + r.Uint64N(1<<uint(r.IntN(32))))
		}
		if nd.Right.Kind != PtrNil {
			nd.RightCount = uint32(1 + r.Uint64N(1<<uint(r.IntN(32))))
		}
	}
	return a
}

// typical returns an afterimage of n nodes of 16-byte keys and 100-byte
// values shaped like a delta: a path in post-order, each node pointing to
// the one before it and to a node of an older afterimage. Its Base is older
// than the intentions it points at by intention (whose afterimages were not
// confirmed when it was written).
func typical(n int) *Afterimage {
	a := &Afterimage{Intention: 1_234_567, Base: 1_234_000, Nodes: make([]Node, n)}
	for i := range a.Nodes {
		nd := &a.Nodes[i]
		nd.Key = bytes.Repeat([]byte{byte('a' + i%26)}, 16)
		nd.Value = bytes.Repeat([]byte{byte(i)}, 100)
		nd.Pos = 1_000_000 + uint64(i)*1000
		nd.MaxPos = 1_234_567
		nd.MinTomb = NoTombstone
		nd.Height = uint8(i + 1)
		nd.Right = AfterimagePtr(1_200_000+uint64(i), uint32(i%40))
		nd.RightCount = 1<<(i%20) + uint32(i)
		if i > 0 {
			nd.Left = SelfPtr(uint32(i - 1))
			nd.LeftCount = uint32(i)
		}
		if i%7 == 3 {
			nd.Right = IntentionPtr(1_234_000+uint64(i), uint32(i%5))
		}
	}
	return a
}

// typicalInIntention is typical(n) with every value in the intention (as
// large values are), and Base the intention itself.
func typicalInIntention(n int) *Afterimage {
	a := typical(n)
	a.Base = a.Intention
	for i := range a.Nodes {
		a.Nodes[i].Value = nil
		a.Nodes[i].ValueInIntention = true
	}
	return a
}

// kinds returns a small afterimage with a node of every sort: a tombstone, a
// value in the intention, empty key and value, a nil key, a bin16 value,
// every pointer kind, extreme offsets and positions.
func kinds() *Afterimage {
	return &Afterimage{Intention: 1 << 40, Base: 1 << 32, Nodes: []Node{
		{Key: []byte("t"), Pos: 4, Tombstone: true, MaxPos: 4, MinTomb: 4, Height: 1},
		{Key: []byte("v"), Pos: 3, ValueInIntention: true, MaxPos: 3, MinTomb: NoTombstone, Height: 1},
		{Key: []byte{}, Value: []byte{}, MaxPos: 4, MinTomb: 0, Height: 2,
			Left: SelfPtr(0), Right: AfterimagePtr(math.MaxUint64, math.MaxUint32)},
		{Value: make([]byte, 300), MaxPos: 1 << 40, MinTomb: 4, Height: 255,
			Left: IntentionPtr(7, 0), Right: SelfPtr(2)},
	}}
}

var decoders = map[string]func([]byte) (*Afterimage, error){
	"Decode":       Decode,
	"DecodeNoCopy": DecodeNoCopy,
	"DecodeInto": func(p []byte) (*Afterimage, error) {
		// Into a recycled afterimage with stale contents.
		a := &Afterimage{Intention: 99, Nodes: make([]Node, 3, 64)}
		a.Nodes[0].Key = []byte("stale")
		if err := DecodeInto(a, p); err != nil {
			return nil, err
		}
		if len(a.Nodes) == 0 {
			a.Nodes = nil // normalise for comparison
		}
		return a, nil
	},
}

func checkRoundTrip(t *testing.T, a *Afterimage) {
	t.Helper()
	if err := a.Validate(); err != nil {
		t.Fatalf("generated afterimage invalid: %v", err)
	}
	enc := a.AppendPayload(nil)
	if got := a.EncodedSize(); got != len(enc) {
		t.Fatalf("EncodedSize %d, encoded %d bytes", got, len(enc))
	}
	if a.maxSize() < len(enc) {
		t.Fatalf("maxSize %d below the encoded size %d", a.maxSize(), len(enc))
	}
	prefixed := a.AppendPayload([]byte("xyz"))
	if string(prefixed[:3]) != "xyz" || !bytes.Equal(prefixed[3:], enc) {
		t.Fatalf("AppendPayload to a non-empty buffer differs")
	}
	// A buffer with room is used as is; one without is grown once, to
	// exactly the size needed.
	for _, room := range []int{0, len(enc) - 1, len(enc), len(enc) + 1} {
		if room < 0 {
			continue
		}
		dst := make([]byte, 3, 3+room)
		out := a.AppendPayload(dst)
		if !bytes.Equal(out[3:], enc) {
			t.Fatalf("room %d: AppendPayload differs", room)
		}
		switch {
		case room >= len(enc) && &out[0] != &dst[0]:
			t.Fatalf("room %d for %d bytes: the buffer was grown", room, len(enc))
		case room < len(enc) && cap(out) != 3+len(enc):
			t.Fatalf("room %d for %d bytes: grown to capacity %d, want %d", room, len(enc), cap(out), 3+len(enc))
		}
	}
	for name, dec := range decoders {
		got, err := dec(bytes.Clone(enc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("%s: round trip differs:\n got %+v\nwant %+v", name, got, a)
		}
		if again := got.AppendPayload(nil); !bytes.Equal(again, enc) {
			t.Fatalf("%s: re-encoding differs", name)
		}
	}
	for i := range a.Nodes {
		nd, err := DecodeNode(enc, uint32(i))
		if err != nil {
			t.Fatalf("DecodeNode(%d): %v", i, err)
		}
		if !reflect.DeepEqual(nd, a.Nodes[i]) {
			t.Fatalf("DecodeNode(%d) = %+v, want %+v", i, nd, a.Nodes[i])
		}
	}
	if _, err := DecodeNode(enc, uint32(len(a.Nodes))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("DecodeNode past the end: %v", err)
	}
}

func TestRoundTripTable(t *testing.T) {
	leaf := func(key string) Node {
		return Node{Key: []byte(key), Value: []byte("v"), Pos: 5, MaxPos: 5, MinTomb: NoTombstone, Height: 1}
	}
	withPtrs := func(l, r Ptr) Node {
		n := leaf("p")
		n.Left, n.Right = l, r
		n.Height = 2
		return n
	}
	tomb := leaf("t")
	tomb.Tombstone, tomb.Value, tomb.MinTomb = true, nil, 5
	tombValue := leaf("tv")
	tombValue.Tombstone, tombValue.MinTomb = true, 5
	inIntention := leaf("i")
	inIntention.Value, inIntention.ValueInIntention = nil, true
	cases := map[string]*Afterimage{
		"empty tree":             {Intention: 3},
		"empty tree base":        {Intention: 3, Base: 3},
		"empty tree max":         {Intention: math.MaxUint64, Base: math.MaxUint64},
		"empty tree max base 0":  {Intention: math.MaxUint64},
		"one leaf":               {Intention: 5, Base: 5, Nodes: []Node{leaf("k")}},
		"base behind":            {Intention: 1 << 40, Base: 1<<40 - 1, Nodes: []Node{leaf("k")}},
		"base uint8 intention 8": {Intention: 1 << 16, Base: 200, Nodes: []Node{leaf("k")}},
		"tombstone":              {Intention: 5, Nodes: []Node{tomb}},
		"tombstone with value":   {Intention: 5, Nodes: []Node{tombValue}},
		"value in intention":     {Intention: 5, Base: 4, Nodes: []Node{inIntention}},
		"in intention, nil key":  {Nodes: []Node{{ValueInIntention: true, Height: 1, MinTomb: NoTombstone}}},
		"in intention, mixed": {Intention: 9, Base: 2, Nodes: []Node{
			inIntention, tomb, withPtrs(SelfPtr(0), SelfPtr(1)), leaf("z"), inIntention,
		}},
		"nil key":      {Nodes: []Node{{Height: 1, MinTomb: NoTombstone}}},
		"empty key":    {Nodes: []Node{{Key: []byte{}, Value: []byte{}, Height: 1}}},
		"mintomb 0":    {Nodes: []Node{{Key: []byte("k"), MinTomb: 0, Height: 1}}},
		"mintomb max1": {Nodes: []Node{{Key: []byte("k"), MinTomb: math.MaxUint64 - 1, Height: 1}}},
		"max ints": {Intention: math.MaxUint64, Base: math.MaxUint64, Nodes: []Node{{
			Key: []byte("k"), Pos: math.MaxUint64, MaxPos: math.MaxUint64, MinTomb: math.MaxUint64, Height: 255,
			ValueInIntention: true,
			Left:             AfterimagePtr(math.MaxUint64, math.MaxUint32),
			Right:            IntentionPtr(math.MaxUint64, math.MaxUint32),
		}}},
		"self ptrs":            {Nodes: []Node{leaf("a"), leaf("c"), withPtrs(SelfPtr(0), SelfPtr(1))}},
		"physical ptrs":        {Nodes: []Node{withPtrs(AfterimagePtr(10, 0), IntentionPtr(7, 3))}},
		"bin16 value":          {Nodes: []Node{{Key: []byte("k"), Value: make([]byte, 300), Height: 1}}},
		"bin32 value":          {Nodes: []Node{{Key: []byte("k"), Value: make([]byte, 70000), Height: 1}}},
		"typical 40":           typical(40),
		"array16 nodes":        typical(100),
		"typical in intention": typicalInIntention(40),
		"kinds":                kinds(),
		"zero off/pos":         {Nodes: []Node{withPtrs(AfterimagePtr(0, 0), IntentionPtr(0, 0))}},
		"self ptr off 0":       {Nodes: []Node{leaf("a"), withPtrs(Ptr{}, SelfPtr(0))}},
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) { checkRoundTrip(t, a) })
	}
}

func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(testutil.Seed(t, 20240611), 1))
	var base, baseZero, baseBehind, inIntention int
	for range 1000 {
		a := randAfterimage(r)
		checkRoundTrip(t, a)
		switch {
		case a.Base == a.Intention:
			base++
		case a.Base == 0:
			baseZero++
		default:
			baseBehind++
		}
		for i := range a.Nodes {
			if a.Nodes[i].ValueInIntention {
				inIntention++
			}
		}
	}
	// The generator must cover the new fields.
	if base == 0 || baseZero == 0 || baseBehind == 0 || inIntention == 0 {
		t.Fatalf("poor coverage: base=intention %d, base 0 %d, base behind %d, values in intention %d",
			base, baseZero, baseBehind, inIntention)
	}
}

// breakAfterimage breaks a valid afterimage in one of the ways the new
// fields allow, and returns the index of the broken node, or -1 when the
// record itself is broken.
func breakAfterimage(r *rand.Rand, a *Afterimage) (string, int) {
	if len(a.Nodes) == 0 || r.IntN(3) == 0 {
		if a.Intention == math.MaxUint64 {
			a.Intention--
		}
		a.Base = a.Intention + 1 + r.Uint64N(math.MaxUint64-a.Intention)
		return "base after intention", -1
	}
	i := r.IntN(len(a.Nodes))
	nd := &a.Nodes[i]
	if r.IntN(4) == 0 {
		nd.ValueInIntention, nd.ValueNum = false, r.Uint32()
		if nd.Pos == 0 {
			nd.Pos = 1
		}
		if r.IntN(2) == 0 {
			nd.ValueCut = 1 + r.Uint64N(nd.Pos)
			return "value in an image of a cut not after its position", i
		}
		nd.ValueCut = nd.Pos + 1
		if nd.Pos == math.MaxUint64 {
			nd.ValueCut = math.MaxUint64
		}
		nd.Tombstone = true
		return "value in an image, with a tombstone", i
	}
	nd.ValueInIntention, nd.ValueCut = true, 0
	switch r.IntN(3) {
	case 0:
		nd.Tombstone = false
		if nd.Value = testutil.RandBytes(r, true); nd.Value == nil {
			nd.Value = []byte{}
		}
		return "value in intention, with a value", i
	case 1:
		nd.Tombstone, nd.Value = true, nil
		return "value in intention, with a tombstone", i
	}
	nd.Tombstone = true
	if nd.Value = testutil.RandBytes(r, true); nd.Value == nil {
		nd.Value = []byte("v")
	}
	return "value in intention, with a value and a tombstone", i
}

// TestInvalidRandom breaks random afterimages: Validate and every decoder
// refuse them (the encoder writes them as they are); DecodeNode refuses the
// broken node and every node of a broken record, and still decodes the
// other nodes (the payload's offsets lead to each node alone).
func TestInvalidRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(testutil.Seed(t, 20240611), 3))
	for range 500 {
		a := randAfterimage(r)
		how, broken := breakAfterimage(r, a)
		if err := a.Validate(); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: Validate %v", how, err)
		}
		enc := a.AppendPayload(nil)
		if len(enc) != a.EncodedSize() {
			t.Fatalf("%s: EncodedSize %d, encoded %d", how, a.EncodedSize(), len(enc))
		}
		for name, dec := range decoders {
			if _, err := dec(enc); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: %s: err %v", how, name, err)
			}
		}
		for i := range a.Nodes {
			nd, err := DecodeNode(enc, uint32(i))
			switch {
			case broken < 0 || i == broken:
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s (node %d): DecodeNode(%d): err %v", how, broken, i, err)
				}
			case err != nil:
				t.Fatalf("%s (node %d): DecodeNode(%d): %v", how, broken, i, err)
			case !reflect.DeepEqual(nd, a.Nodes[i]):
				t.Fatalf("%s (node %d): DecodeNode(%d) = %+v, want %+v", how, broken, i, nd, a.Nodes[i])
			}
		}
	}
}

// libEncode encodes a with the msgpack library's Encoder primitives.
func libEncode(t testing.TB, a *Afterimage) []byte {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	ptr := func(p Ptr) {
		switch p.Kind {
		case PtrNil:
			must(e.EncodeNil())
		case PtrSelf:
			must(e.EncodeArrayLen(2))
			must(e.EncodeUint(uint64(p.Kind)))
			must(e.EncodeUint(uint64(p.Off)))
		default:
			must(e.EncodeArrayLen(3))
			must(e.EncodeUint(uint64(p.Kind)))
			must(e.EncodeUint(p.Pos))
			must(e.EncodeUint(uint64(p.Off)))
		}
	}
	must(e.EncodeArrayLen(4))
	must(e.EncodeUint(a.Intention))
	must(e.EncodeUint(a.Base))
	must(e.EncodeArrayLen(len(a.Nodes)))
	var offsets []byte
	for _, n := range a.Nodes {
		start := buf.Len()
		offsets = binary.BigEndian.AppendUint32(offsets, uint32(start))
		must(e.EncodeArrayLen(12))
		must(e.EncodeBytes(n.Key))
		must(e.EncodeBytes(n.Value))
		must(e.EncodeUint(n.Pos))
		must(e.EncodeBool(n.Tombstone))
		must(e.EncodeUint(n.MaxPos))
		if n.MinTomb == NoTombstone {
			must(e.EncodeNil())
		} else {
			must(e.EncodeUint(n.MinTomb))
		}
		must(e.EncodeUint(uint64(n.Height)))
		ptr(n.Left)
		ptr(n.Right)
		if n.ValueCut != 0 {
			must(e.EncodeArrayLen(2))
			must(e.EncodeUint(n.ValueCut))
			must(e.EncodeUint(uint64(n.ValueNum)))
		} else {
			must(e.EncodeBool(n.ValueInIntention))
		}
		must(e.EncodeUint(uint64(n.LeftCount)))
		must(e.EncodeUint(uint64(n.RightCount)))
		offsets = binary.BigEndian.AppendUint32(offsets, crc32.Checksum(buf.Bytes()[start:], crc32.MakeTable(crc32.Castagnoli)))
	}
	if offsets == nil {
		offsets = []byte{}
	}
	must(e.EncodeBytes(offsets))
	return buf.Bytes()
}

// asUint returns a generically decoded msgpack integer as a uint64.
func asUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8:
		return uint64(x), x >= 0
	case int16:
		return uint64(x), x >= 0
	case int32:
		return uint64(x), x >= 0
	case int64:
		return uint64(x), x >= 0
	}
	return 0, false
}

// checkGeneric decodes enc with the library's generic decoder and checks the
// record's shape and its new fields against a.
func checkGeneric(t *testing.T, a *Afterimage, enc []byte) {
	t.Helper()
	d := msgpack.NewDecoder(bytes.NewReader(enc))
	v, err := d.DecodeInterface()
	if err != nil {
		t.Fatalf("generic decode: %v", err)
	}
	if _, err := d.DecodeInterface(); err == nil {
		t.Fatalf("payload is more than one msgpack value")
	}
	rec, ok := v.([]any)
	if !ok || len(rec) != 4 {
		t.Fatalf("record is %T of %d elements, want 4", v, len(rec))
	}
	if offsets, ok := rec[3].([]byte); !ok || len(offsets) != 8*len(a.Nodes) {
		t.Fatalf("offsets are %T of %d bytes, want %d", rec[3], len(offsets), 8*len(a.Nodes))
	}
	if in, ok := asUint(rec[0]); !ok || in != a.Intention {
		t.Fatalf("intention %v, want %d", rec[0], a.Intention)
	}
	if base, ok := asUint(rec[1]); !ok || base != a.Base {
		t.Fatalf("base %v, want %d", rec[1], a.Base)
	}
	nodes, ok := rec[2].([]any)
	if !ok || len(nodes) != len(a.Nodes) {
		t.Fatalf("nodes are %T of %d elements, want %d", rec[2], len(nodes), len(a.Nodes))
	}
	for i, v := range nodes {
		nd, ok := v.([]any)
		if !ok || len(nd) != 12 {
			t.Fatalf("node %d is %T of %d elements, want 12", i, v, len(nd))
		}
		if c, ok := asUint(nd[10]); !ok || c != uint64(a.Nodes[i].LeftCount) {
			t.Fatalf("node %d: left count %v, want %d", i, nd[10], a.Nodes[i].LeftCount)
		}
		if c, ok := asUint(nd[11]); !ok || c != uint64(a.Nodes[i].RightCount) {
			t.Fatalf("node %d: right count %v, want %d", i, nd[11], a.Nodes[i].RightCount)
		}
		if nd[3] != a.Nodes[i].Tombstone {
			t.Fatalf("node %d: tombstone %v, want %t", i, nd[3], a.Nodes[i].Tombstone)
		}
		if w := a.Nodes[i]; w.ValueCut != 0 {
			at, ok := nd[9].([]any)
			if !ok || len(at) != 2 {
				t.Fatalf("node %d: image value %v, want [%d %d]", i, nd[9], w.ValueCut, w.ValueNum)
			}
			if c, ok := asUint(at[0]); !ok || c != w.ValueCut {
				t.Fatalf("node %d: image value cut %v, want %d", i, at[0], w.ValueCut)
			}
			if k, ok := asUint(at[1]); !ok || k != uint64(w.ValueNum) {
				t.Fatalf("node %d: image value node %v, want %d", i, at[1], w.ValueNum)
			}
		} else if nd[9] != w.ValueInIntention {
			t.Fatalf("node %d: value-in-intention %v, want %t", i, nd[9], w.ValueInIntention)
		}
	}
}

// firstDiff returns the first offset where a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestMsgpackCompatible(t *testing.T) {
	r := rand.New(rand.NewPCG(testutil.Seed(t, 20240611), 2))
	for i := range 300 {
		a := randAfterimage(r)
		switch i {
		case 0:
			a = typical(40)
		case 1:
			a = typicalInIntention(20)
		case 2:
			a = kinds()
		}
		enc := a.AppendPayload(nil)
		if lib := libEncode(t, a); !bytes.Equal(lib, enc) {
			at := firstDiff(lib, enc)
			t.Fatalf("library encoding differs at byte %d of %d/%d:\n lib %x\nours %x",
				at, len(lib), len(enc), lib[at:min(len(lib), at+32)], enc[at:min(len(enc), at+32)])
		}
		checkGeneric(t, a, enc)
	}
}

// lenientPayload is a valid payload in non-canonical msgpack: fixed-width
// and signed integers, str keys and values, NoTombstone as a number.
func lenientPayload() []byte {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.EncodeArrayLen(3)
	e.EncodeUint64(7)
	e.EncodeInt32(6) // base
	e.EncodeArrayLen(2)
	for i := range 2 {
		e.EncodeArrayLen(12)
		e.EncodeString("key")
		if i == 0 {
			e.EncodeString("v")
		} else {
			e.EncodeNil() // the value is in the intention
		}
		e.EncodeInt64(3)
		e.EncodeBool(false)
		e.EncodeUint32(4)
		e.EncodeUint64(math.MaxUint64) // NoTombstone, written as a number
		e.EncodeUint16(1)
		e.EncodeNil()
		if i == 0 {
			e.EncodeArrayLen(3)
			e.EncodeUint64(2)
			e.EncodeUint64(9)
			e.EncodeUint64(1)
		} else {
			e.EncodeArrayLen(2)
			e.EncodeInt8(1)
			e.EncodeInt32(0)
		}
		e.EncodeBool(i == 1)
		e.EncodeInt64(0)
		e.EncodeUint32(uint32(7 + i)) // the right subtree's count
	}
	return buf.Bytes()
}

// TestDecodeLenient feeds non-canonical but valid msgpack.
func TestDecodeLenient(t *testing.T) {
	n := Node{Key: []byte("key"), Pos: 3, MaxPos: 4, MinTomb: NoTombstone, Height: 1}
	n0, n1 := n, n
	n0.Value = []byte("v")
	n0.Right, n0.RightCount = AfterimagePtr(9, 1), 7
	n1.Right, n1.RightCount = SelfPtr(0), 8
	n1.ValueInIntention = true
	want := &Afterimage{Intention: 7, Base: 6, Nodes: []Node{n0, n1}}
	p := lenientPayload()
	for name, dec := range decoders {
		got, err := dec(bytes.Clone(p))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %+v\nwant %+v", name, got, want)
		}
	}
	for i := range want.Nodes {
		if nd, err := DecodeNode(p, uint32(i)); err != nil || !reflect.DeepEqual(nd, want.Nodes[i]) {
			t.Fatalf("DecodeNode(%d) = %+v, %v", i, nd, err)
		}
	}
	if canon := want.AppendPayload(nil); bytes.Equal(canon, p) || len(canon) >= len(p) {
		t.Fatalf("the lenient payload is canonical")
	}
}

func TestDecodeOwnership(t *testing.T) {
	a := typical(3)
	enc := a.AppendPayload(nil)
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 0xee
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("Decode result aliases the payload")
	}
	enc = a.AppendPayload(nil)
	for name, dec := range decoders {
		got, err := dec(bytes.Clone(enc))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range [][]byte{got.Nodes[0].Key, got.Nodes[0].Value} {
			if cap(s) != len(s) {
				t.Fatalf("%s: slice of len %d has cap %d", name, len(s), cap(s))
			}
		}
		_ = append(got.Nodes[0].Key, "XXXX"...)
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("%s: an append changed the afterimage", name)
		}
	}
	nc, err := DecodeNoCopy(enc)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(enc, a.Nodes[1].Value)
	enc[i] ^= 0xff
	if nc.Nodes[1].Value[0] != enc[i] {
		t.Fatalf("DecodeNoCopy does not alias the payload")
	}
}

func TestDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	check := func(name string, max float64, f func()) {
		t.Helper()
		if n := testing.AllocsPerRun(50, f); n > max {
			t.Errorf("%s: %v allocs, want at most %v", name, n, max)
		}
	}
	for _, ai := range []*Afterimage{typical(40), typicalInIntention(40)} {
		enc := ai.AppendPayload(nil)
		check("Decode", 3, func() { Decode(enc) })
		check("DecodeNoCopy", 2, func() { DecodeNoCopy(enc) })
		var a Afterimage
		check("DecodeInto", 0, func() { DecodeInto(&a, enc) })
		check("DecodeNode", 3, func() { DecodeNode(enc, 39) }) // the NodeIndex, its offsets, the copy
		buf := make([]byte, 0, 8192)
		check("AppendPayload", 0, func() { buf = ai.AppendPayload(buf[:0]) })
	}
}

// Node field indexes, for hand-made payloads.
const (
	fKey = iota
	fValue
	fPos
	fTomb
	fMaxPos
	fMinTomb
	fHeight
	fLeft
	fRight
	fInIntention
	fLeftCount
	fRightCount
)

// nodeFieldBytes returns the encoded fields of a valid node: key "k", nil
// value, pos 1, no tombstone, maxpos 1, nil mintomb, height 1, nil
// pointers, value not in the intention, subtree counts 0.
func nodeFieldBytes() [][]byte {
	return [][]byte{{0xc4, 1, 'k'}, {0xc0}, {1}, {0xc2}, {1}, {0xc0}, {1}, {0xc0}, {0xc0}, {0xc2}, {0}, {0}}
}

// rawNode encodes fields as a node (a fixarray of them).
func rawNode(fields [][]byte) []byte {
	b := []byte{0x90 | byte(len(fields))}
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

// nf sets encoded node fields by index.
type nf map[int][]byte

// node returns the valid node of nodeFieldBytes with the fields of set
// replaced.
func node(set nf) []byte {
	fields := nodeFieldBytes()
	for i, f := range set {
		fields[i] = f
	}
	return rawNode(fields)
}

// payload is a record of intention 5, base 4 and nodes.
func payload(nodes ...[]byte) []byte {
	return record(5, 4, nodes...)
}

// record is a record of the intention, base (both below 128) and nodes.
func record(in, base byte, nodes ...[]byte) []byte {
	b := []byte{0x93, in, base, 0x90 | byte(len(nodes))}
	for _, n := range nodes {
		b = append(b, n...)
	}
	return b
}

var maxUint64 = []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func TestDecodeHandMade(t *testing.T) {
	n := Node{Key: []byte("k"), Pos: 1, MaxPos: 1, MinTomb: NoTombstone, Height: 1}
	with := func(f func(*Node)) Node {
		m := n
		f(&m)
		return m
	}
	maxBoth := append(append([]byte{0x93}, maxUint64...), maxUint64...)
	cases := map[string]struct {
		data []byte
		want *Afterimage
	}{
		"empty":            {payload(), &Afterimage{Intention: 5, Base: 4}},
		"base = intention": {record(5, 5), &Afterimage{Intention: 5, Base: 5}},
		"base 0":           {record(5, 0), &Afterimage{Intention: 5}},
		"all 0":            {record(0, 0), &Afterimage{}},
		"base = max":       {append(maxBoth, 0x90), &Afterimage{Intention: math.MaxUint64, Base: math.MaxUint64}},
		"one node":         {payload(node(nil)), &Afterimage{Intention: 5, Base: 4, Nodes: []Node{n}}},
		"value in intention": {payload(node(nf{fInIntention: {0xc3}})), &Afterimage{Intention: 5, Base: 4,
			Nodes: []Node{with(func(m *Node) { m.ValueInIntention = true })}}},
		"value in image": {payload(node(nf{fInIntention: {0x92, 9, 0xcd, 1, 0}})), &Afterimage{Intention: 5, Base: 4,
			Nodes: []Node{with(func(m *Node) { m.ValueCut, m.ValueNum = 9, 256 })}}},
		"value here and in image": {payload(node(nf{fValue: {0xa1, 'v'}, fInIntention: {0x92, 2, 0}})), &Afterimage{Intention: 5, Base: 4,
			Nodes: []Node{with(func(m *Node) { m.Value, m.ValueCut = []byte("v"), 2 })}}},
		"tombstone": {payload(node(nf{fTomb: {0xc3}})), &Afterimage{Intention: 5, Base: 4,
			Nodes: []Node{with(func(m *Node) { m.Tombstone = true })}}},
		"value": {payload(node(nf{fValue: {0xa1, 'v'}})), &Afterimage{Intention: 5, Base: 4,
			Nodes: []Node{with(func(m *Node) { m.Value = []byte("v") })}}},
		"pointers": {payload(node(nil), node(nf{fLeft: {0x92, 1, 0}, fRight: {0x93, 2, 7, 0}, fInIntention: {0xc3},
			fLeftCount: {1}, fRightCount: {0xce, 0xff, 0xff, 0xff, 0xff}})),
			&Afterimage{Intention: 5, Base: 4, Nodes: []Node{n, with(func(m *Node) {
				m.Left, m.Right, m.ValueInIntention = SelfPtr(0), AfterimagePtr(7, 0), true
				m.LeftCount, m.RightCount = 1, math.MaxUint32
			})}}},
	}
	for name, c := range cases {
		for dname, dec := range decoders {
			got, err := dec(c.data)
			if err != nil {
				t.Errorf("%s: %s: %v", name, dname, err)
			} else if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: %s: got %+v\nwant %+v", name, dname, got, c.want)
			}
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, a := range []*Afterimage{typical(4), kinds()} {
		enc := a.AppendPayload(nil)
		for n := range len(enc) {
			if _, err := Decode(enc[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("truncation to %d bytes: err %v", n, err)
			}
		}
		if _, err := Decode(append(bytes.Clone(enc), 0xc0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("trailing byte: err %v", err)
		}
	}
	height := func(h ...byte) []byte { return node(nf{fHeight: h}) }
	ptrs := func(l, r []byte) []byte { return node(nf{fLeft: l, fRight: r}) }
	nilPtr := []byte{0xc0}
	// oldNode is a node of the previous format: nine fields, no
	// value-in-intention.
	oldNode := rawNode(nodeFieldBytes()[:9])
	cases := map[string][]byte{
		// The record.
		"nil":                   nil,
		"not an array":          {0xc0},
		"1 field":               {0x91, 0x05},
		"2 fields (old format)": {0x92, 0x05, 0x90},
		"old format, one node":  append([]byte{0x92, 0x05, 0x91}, oldNode...),
		"4 fields":              {0x94, 0x05, 0x04, 0x90, 0x90},
		"nodes not array":       {0x93, 0x05, 0x04, 0xc0},
		"nodes missing":         {0x93, 0x05, 0x04},
		"intention not uint":    {0x93, 0xc0, 0x00, 0x90},
		"intention negative":    {0x93, 0xff, 0x00, 0x90},
		"huge node count":       {0x93, 0x05, 0x04, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0},
		"node count > bytes":    append([]byte{0x93, 0x05, 0x04, 0x92}, node(nil)...),
		// Base.
		"base after intention":            record(5, 6),
		"base after intention 0":          record(0, 1),
		"base after intention, with node": record(5, 6, node(nil)),
		"base max, intention 0":           append(append([]byte{0x93, 0x00}, maxUint64...), 0x90),
		"base max, intention max-1": append(append([]byte{0x93, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe},
			maxUint64...), 0x90),
		"base not uint":  {0x93, 0x05, 0xc0, 0x90},
		"base bool":      {0x93, 0x05, 0xc2, 0x90},
		"base negative":  {0x93, 0x05, 0xff, 0x90},
		"base missing":   {0x93, 0x05, 0x90},
		"base truncated": {0x93, 0x05, 0xcd, 0x00},
		// Node shape.
		"node 9 fields (old format)": payload(oldNode),
		"node 9 fields, then a node": payload(oldNode, node(nil)),
		"node 10 fields, 9 given":    payload(append([]byte{0x9a}, oldNode[1:]...)),
		"node 11 fields":             payload(rawNode(append(nodeFieldBytes(), []byte{0xc2}))),
		"node not array":             payload(append([]byte{0xc0}, make([]byte, 10)...)),
		"height 0":                   payload(height(0)),
		"height 256":                 payload(height(0xcd, 1, 0)),
		"tombstone not bool":         payload(node(nf{fTomb: {0x01}})),
		"tombstone nil":              payload(node(nf{fTomb: {0xc0}})),
		"huge key":                   payload(node(nf{fKey: {0xc6, 0x7f, 0xff, 0xff, 0xff}})),
		"negative pos":               payload(node(nf{fPos: {0xff}})),
		"mintomb bool":               payload(node(nf{fMinTomb: {0xc2}})),
		// Value in the intention.
		"in intention nil":        payload(node(nf{fInIntention: {0xc0}})),
		"in intention 0":          payload(node(nf{fInIntention: {0x00}})),
		"in intention 1":          payload(node(nf{fInIntention: {0x01}})),
		"in intention str":        payload(node(nf{fInIntention: {0xa1, 't'}})),
		"in intention array":      payload(node(nf{fInIntention: {0x90}})),
		"in intention, value":     payload(node(nf{fValue: {0xc4, 1, 'v'}, fInIntention: {0xc3}})),
		"in intention, str value": payload(node(nf{fValue: {0xa1, 'v'}, fInIntention: {0xc3}})),
		"in intention, empty bin": payload(node(nf{fValue: {0xc4, 0}, fInIntention: {0xc3}})),
		"in intention, empty str": payload(node(nf{fValue: {0xa0}, fInIntention: {0xc3}})),
		"in intention, tombstone": payload(node(nf{fTomb: {0xc3}, fInIntention: {0xc3}})),
		"in intention, both":      payload(node(nf{fValue: {0xc4, 1, 'v'}, fTomb: {0xc3}, fInIntention: {0xc3}})),
		"in intention, 2nd node":  payload(node(nil), node(nf{fTomb: {0xc3}, fInIntention: {0xc3}})),
		// Value in an image (the node's pos is 1).
		"in image, cut 0":        payload(node(nf{fInIntention: {0x92, 0, 0}})),
		"in image, cut at pos":   payload(node(nf{fInIntention: {0x92, 1, 0}})),
		"in image, one field":    payload(node(nf{fInIntention: {0x91, 2}})),
		"in image, three fields": payload(node(nf{fInIntention: {0x93, 2, 0, 0}})),
		"in image, num > uint32": payload(node(nf{fInIntention: {0x92, 2, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0}})),
		"in image, cut not uint": payload(node(nf{fInIntention: {0x92, 0xc0, 0}})),
		"in image, num missing":  payload(node(nf{fInIntention: {0x92, 2}})),
		"in image, tombstone":    payload(node(nf{fTomb: {0xc3}, fInIntention: {0x92, 2, 0}})),
		// Pointers.
		"self ptr to itself":   payload(ptrs([]byte{0x92, 1, 0}, nilPtr)),
		"self ptr forward":     payload(node(nil), ptrs(nilPtr, []byte{0x92, 1, 5})),
		"self ptr 3 fields":    payload(node(nil), ptrs([]byte{0x93, 1, 0, 0}, nilPtr)),
		"self ptr off > index": payload(node(nil), node(nil), ptrs([]byte{0x92, 1, 2}, nilPtr)),
		"ptr kind 0 as array":  payload(ptrs([]byte{0x92, 0, 0}, nilPtr)),
		"ptr kind 4":           payload(ptrs([]byte{0x93, 4, 1, 1}, nilPtr)),
		"ptr kind 256":         payload(ptrs([]byte{0x93, 0xcd, 1, 0, 1, 1}, nilPtr)),
		"phys ptr 2 fields":    payload(ptrs([]byte{0x92, 2, 1}, nilPtr)),
		"phys ptr 4 fields":    payload(ptrs([]byte{0x94, 2, 1, 1, 1}, nilPtr)),
		"ptr 1 field":          payload(ptrs([]byte{0x91, 2}, nilPtr)),
		"ptr 0 fields":         payload(ptrs([]byte{0x90}, nilPtr)),
		"off > uint32":         payload(ptrs([]byte{0x93, 2, 1, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, nilPtr)),
		"ptr is int":           payload(ptrs([]byte{0x01}, nilPtr)),
		"right ptr is bool":    payload(ptrs(nilPtr, []byte{0xc2})),
	}
	for name, data := range cases {
		for dname, dec := range decoders {
			_, err := dec(data)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: %s: err %v, want ErrMalformed", name, dname, err)
				continue
			}
			if !strings.HasPrefix(err.Error(), "afterimage: ") {
				t.Errorf("%s: %s: error text %q", name, dname, err)
			}
			if dname == "Decode" {
				t.Logf("%s: %v", name, err)
			}
		}
		// DecodeNode reads only up to its node: it may accept a node
		// before the fault, but never panics and fails only with
		// ErrMalformed.
		for off := range uint32(4) {
			if _, err := DecodeNode(data, off); err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: DecodeNode(%d): err %v", name, off, err)
			}
		}
	}
	// Faults in the record, and in the first node, fail DecodeNode of
	// every node.
	for _, name := range []string{
		"base after intention, with node", "old format, one node", "node 9 fields, then a node",
		"in intention, value", "in intention, tombstone", "in intention nil", "in intention 1",
	} {
		for off := range uint32(2) {
			if _, err := DecodeNode(cases[name], off); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: DecodeNode(%d): err %v", name, off, err)
			}
		}
	}
	// A fault in node 1 leaves node 0 readable on its own.
	if _, err := DecodeNode(cases["in intention, 2nd node"], 0); err != nil {
		t.Errorf("DecodeNode before the fault: %v", err)
	}
	if _, err := DecodeNode(cases["in intention, 2nd node"], 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeNode of the faulty node: %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := Node{Key: []byte("k"), Height: 1}
	bad := map[string]Node{
		"height 0":                  {Key: []byte("k")},
		"unknown kind":              {Height: 1, Left: Ptr{Kind: 7}},
		"nil with pos":              {Height: 1, Right: Ptr{Pos: 1}},
		"nil with off":              {Height: 1, Right: Ptr{Off: 1}},
		"self with pos":             {Height: 1, Left: Ptr{Kind: PtrSelf, Pos: 1}},
		"self to itself":            {Height: 1, Left: SelfPtr(1)},
		"self to later node":        {Height: 1, Right: SelfPtr(2)},
		"in intention, value":       {Height: 1, ValueInIntention: true, Value: []byte("v")},
		"in intention, empty":       {Height: 1, ValueInIntention: true, Value: []byte{}},
		"in intention, tombstone":   {Height: 1, ValueInIntention: true, Tombstone: true},
		"in intention, both":        {Height: 1, ValueInIntention: true, Tombstone: true, Value: []byte("v")},
		"in intention, height 0":    {ValueInIntention: true},
		"in intention, bad ptr":     {Height: 1, ValueInIntention: true, Left: SelfPtr(5)},
		"tombstone, in intention":   {Height: 1, Tombstone: true, ValueInIntention: true, Key: []byte("t")},
		"in intention, nil ptr off": {Height: 1, ValueInIntention: true, Right: Ptr{Off: 3}},
		"in image and intention":    {Height: 1, Pos: 1, ValueCut: 2, ValueInIntention: true},
		"in image, tombstone":       {Height: 1, Pos: 1, ValueCut: 2, Tombstone: true},
		"in image, cut at pos":      {Height: 1, Pos: 2, ValueCut: 2},
		"in image, cut before pos":  {Height: 1, Pos: 3, ValueCut: 2},
	}
	for name, n := range bad {
		a := &Afterimage{Intention: 2, Base: 1, Nodes: []Node{ok, n}}
		if err := a.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Validate %v", name, err)
		}
		// What Validate refuses does not decode (the encoding drops unused
		// pointer fields, so those cases decode to a valid afterimage that
		// differs from a).
		got, err := Decode(a.AppendPayload(nil))
		if err == nil && reflect.DeepEqual(got, a) {
			t.Errorf("%s: decoded to the same invalid afterimage", name)
		}
	}
	for _, a := range []*Afterimage{
		{Intention: 3, Base: 4},
		{Intention: 0, Base: 1},
		{Intention: math.MaxUint64 - 1, Base: math.MaxUint64, Nodes: []Node{ok}},
	} {
		if err := a.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("base %d, intention %d: Validate %v", a.Base, a.Intention, err)
		}
		if _, err := Decode(a.AppendPayload(nil)); !errors.Is(err, ErrMalformed) {
			t.Errorf("base %d, intention %d: Decode %v", a.Base, a.Intention, err)
		}
	}
	good := []*Afterimage{
		{Nodes: []Node{ok, {Height: 1, Left: SelfPtr(0), Right: IntentionPtr(3, 9)}}},
		{Intention: 5, Base: 5, Nodes: []Node{ok, {Height: 1, ValueInIntention: true, Left: SelfPtr(0)}}},
		{Intention: math.MaxUint64, Base: math.MaxUint64},
	}
	for _, a := range good {
		if err := a.Validate(); err != nil {
			t.Errorf("%+v: %v", a, err)
		}
	}
}

func TestPtrString(t *testing.T) {
	for p, want := range map[Ptr]string{
		{}:                        "nil",
		SelfPtr(3):                "self(3)",
		AfterimagePtr(120, 4):     "afterimage(120,4)",
		IntentionPtr(118, 2):      "intention(118,2)",
		{Kind: 9, Pos: 1, Off: 2}: "ptr(kind=9,pos=1,off=2)",
	} {
		if got := p.String(); got != want {
			t.Errorf("%#v: %q, want %q", p, got, want)
		}
	}
	for k, want := range map[PtrKind]string{PtrNil: "nil", PtrSelf: "self", PtrAfterimage: "afterimage", PtrIntention: "intention", 5: "ptrkind(5)"} {
		if got := k.String(); got != want {
			t.Errorf("kind %d: %q, want %q", k, got, want)
		}
	}
	n := &Node{Key: []byte("k"), Pos: 3, MaxPos: 4, MinTomb: NoTombstone, Height: 1, Left: SelfPtr(0)}
	n.LeftCount = 1
	want := `key="k" value=nil pos=3 tomb=false maxpos=4 mintomb=none height=1 left=self(0)/1 right=nil/0`
	if got := n.String(); got != want {
		t.Errorf("Node.String:\n got %s\nwant %s", got, want)
	}
}

func TestPointerCounts(t *testing.T) {
	a := typical(40)
	c := a.PointerCounts()
	want := PointerCounts{Nil: 1, Self: 39, Afterimage: 34, Intention: 6}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if c.Total() != 80 {
		t.Fatalf("Total %d", c.Total())
	}
	c.Add(want)
	if c.Self != 78 || c.Total() != 160 {
		t.Fatalf("Add: %+v", c)
	}
	if (&Afterimage{}).PointerCounts() != (PointerCounts{}) {
		t.Fatal("empty afterimage has pointers")
	}
}
