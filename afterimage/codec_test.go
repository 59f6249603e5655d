package afterimage

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// testSeed returns the seed of a randomized test: CRUZDB_SEED if set, else a
// fixed one. It is logged so a failure can be replayed.
func testSeed(t testing.TB) uint64 {
	seed := uint64(20240611)
	if s := os.Getenv("CRUZDB_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CRUZDB_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with CRUZDB_SEED=%d)", seed, seed)
	return seed
}

func randBytes(r *rand.Rand) []byte {
	switch x := r.IntN(100); {
	case x < 5:
		return nil
	case x < 10:
		return []byte{}
	case x < 13:
		return randFill(r, 256+r.IntN(300))
	case x == 13:
		return randFill(r, 65536+r.IntN(100))
	default:
		return randFill(r, 1+r.IntN(40))
	}
}

func randFill(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randUint(r *rand.Rand) uint64 {
	switch r.IntN(6) {
	case 0:
		return uint64(r.IntN(128))
	case 1:
		return uint64(r.IntN(256))
	case 2:
		return uint64(r.IntN(65536))
	case 3:
		return uint64(r.Uint32())
	case 4:
		return math.MaxUint64 - uint64(r.IntN(3))
	}
	return r.Uint64()
}

func randOff(r *rand.Rand) uint32 {
	if r.IntN(10) == 0 {
		return math.MaxUint32 - uint32(r.IntN(3))
	}
	return uint32(randUint(r) % (1 << 20))
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
		return AfterimagePtr(randUint(r), randOff(r))
	}
	return IntentionPtr(randUint(r), randOff(r))
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
	b := randUint(r)
	if in != math.MaxUint64 {
		b %= in + 1
	}
	return b
}

func randAfterimage(r *rand.Rand) *Afterimage {
	a := &Afterimage{Intention: randUint(r)}
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
		nd.Key = randBytes(r)
		switch x := r.IntN(8); {
		case x < 2:
			nd.Tombstone = true
			if r.IntN(5) == 0 {
				nd.Value = randBytes(r)
			}
		case x < 4:
			// The value is in the intention: no value, no tombstone.
			nd.ValueInIntention = true
		default:
			nd.Value = randBytes(r)
		}
		nd.Pos = randUint(r)
		nd.MaxPos = randUint(r)
		nd.MinTomb = NoTombstone
		if r.IntN(3) == 0 {
			nd.MinTomb = randUint(r)
		}
		nd.Height = uint8(1 + r.IntN(255))
		nd.Left = randPtr(r, i)
		nd.Right = randPtr(r, i)
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
		if i > 0 {
			nd.Left = SelfPtr(uint32(i - 1))
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
	prefixed := a.AppendPayload([]byte("xyz"))
	if string(prefixed[:3]) != "xyz" || !bytes.Equal(prefixed[3:], enc) {
		t.Fatalf("AppendPayload to a non-empty buffer differs")
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
	cases := map[string]*Afterimage{
		"empty tree":   {Intention: 3},
		"one leaf":     {Intention: 5, Nodes: []Node{leaf("k")}},
		"tombstone":    {Intention: 5, Nodes: []Node{tomb}},
		"nil key":      {Nodes: []Node{{Height: 1, MinTomb: NoTombstone}}},
		"empty key":    {Nodes: []Node{{Key: []byte{}, Value: []byte{}, Height: 1}}},
		"mintomb 0":    {Nodes: []Node{{Key: []byte("k"), MinTomb: 0, Height: 1}}},
		"mintomb max1": {Nodes: []Node{{Key: []byte("k"), MinTomb: math.MaxUint64 - 1, Height: 1}}},
		"max ints": {Intention: math.MaxUint64, Nodes: []Node{{
			Key: []byte("k"), Pos: math.MaxUint64, MaxPos: math.MaxUint64, MinTomb: math.MaxUint64, Height: 255,
			Left:  AfterimagePtr(math.MaxUint64, math.MaxUint32),
			Right: IntentionPtr(math.MaxUint64, math.MaxUint32),
		}}},
		"self ptrs":      {Nodes: []Node{leaf("a"), leaf("c"), withPtrs(SelfPtr(0), SelfPtr(1))}},
		"physical ptrs":  {Nodes: []Node{withPtrs(AfterimagePtr(10, 0), IntentionPtr(7, 3))}},
		"bin16 value":    {Nodes: []Node{{Key: []byte("k"), Value: make([]byte, 300), Height: 1}}},
		"bin32 value":    {Nodes: []Node{{Key: []byte("k"), Value: make([]byte, 70000), Height: 1}}},
		"typical 40":     typical(40),
		"array16 nodes":  typical(100),
		"zero off/pos":   {Nodes: []Node{withPtrs(AfterimagePtr(0, 0), IntentionPtr(0, 0))}},
		"self ptr off 0": {Nodes: []Node{leaf("a"), withPtrs(Ptr{}, SelfPtr(0))}},
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) { checkRoundTrip(t, a) })
	}
}

func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 1))
	for range 1000 {
		checkRoundTrip(t, randAfterimage(r))
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
	must(e.EncodeArrayLen(2))
	must(e.EncodeUint(a.Intention))
	must(e.EncodeArrayLen(len(a.Nodes)))
	for _, n := range a.Nodes {
		must(e.EncodeArrayLen(9))
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
	}
	return buf.Bytes()
}

func TestMsgpackCompatible(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 2))
	for i := range 300 {
		a := randAfterimage(r)
		if i == 0 {
			a = typical(40)
		}
		enc := a.AppendPayload(nil)
		if lib := libEncode(t, a); !bytes.Equal(lib, enc) {
			t.Fatalf("library encoding differs:\n lib %x\nours %x", lib, enc)
		}
		d := msgpack.NewDecoder(bytes.NewReader(enc))
		if _, err := d.DecodeInterface(); err != nil {
			t.Fatalf("generic decode: %v", err)
		}
		if _, err := d.DecodeInterface(); err == nil {
			t.Fatalf("payload is more than one msgpack value")
		}
	}
}

// TestDecodeLenient feeds non-canonical but valid msgpack.
func TestDecodeLenient(t *testing.T) {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.EncodeArrayLen(2)
	e.EncodeUint64(7)
	e.EncodeArrayLen(2)
	for i := range 2 {
		e.EncodeArrayLen(9)
		e.EncodeString("key")
		e.EncodeNil()
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
	}
	n := Node{Key: []byte("key"), Pos: 3, MaxPos: 4, MinTomb: NoTombstone, Height: 1}
	n0, n1 := n, n
	n0.Right = AfterimagePtr(9, 1)
	n1.Right = SelfPtr(0)
	want := &Afterimage{Intention: 7, Nodes: []Node{n0, n1}}
	got, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
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
	enc := typical(40).AppendPayload(nil)
	check := func(name string, max float64, f func()) {
		t.Helper()
		if n := testing.AllocsPerRun(50, f); n > max {
			t.Errorf("%s: %v allocs, want at most %v", name, n, max)
		}
	}
	check("Decode", 3, func() { Decode(enc) })
	check("DecodeNoCopy", 2, func() { DecodeNoCopy(enc) })
	var a Afterimage
	check("DecodeInto", 0, func() { DecodeInto(&a, enc) })
	check("DecodeNode", 1, func() { DecodeNode(enc, 39) })
	buf := make([]byte, 0, 8192)
	ai := typical(40)
	check("AppendPayload", 0, func() { buf = ai.AppendPayload(buf[:0]) })
}

// node9 is a valid node body after its fixarray header, for hand-made
// malformed payloads: key "k", nil value, pos 1, false, maxpos 1, nil
// mintomb, height 1; the two pointers follow.
var node9 = []byte{0x99, 0xc4, 1, 'k', 0xc0, 1, 0xc2, 1, 0xc0, 1}

func payload(nodes ...[]byte) []byte {
	b := []byte{0x92, 0x05, 0x90 | byte(len(nodes))}
	for _, n := range nodes {
		b = append(b, n...)
	}
	return b
}

func node(ptrs ...byte) []byte { return append(bytes.Clone(node9), ptrs...) }

func TestDecodeMalformed(t *testing.T) {
	enc := typical(4).AppendPayload(nil)
	for n := range len(enc) {
		if _, err := Decode(enc[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncation to %d bytes: err %v", n, err)
		}
	}
	if _, err := Decode(append(bytes.Clone(enc), 0xc0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: err %v", err)
	}
	// The hand-made payloads are well-formed with valid pointers.
	for _, ok := range [][]byte{
		payload(),
		payload(node(0xc0, 0xc0)),
		payload(node(0xc0, 0xc0), node(0x92, 1, 0, 0x93, 2, 7, 0)),
	} {
		if _, err := Decode(ok); err != nil {
			t.Fatalf("%x: %v", ok, err)
		}
	}
	height := func(h ...byte) []byte {
		n := bytes.Clone(node9)
		return append(append(n[:len(n)-1], h...), 0xc0, 0xc0)
	}
	cases := map[string][]byte{
		"nil":                  nil,
		"not an array":         {0xc0},
		"1 field":              {0x91, 0x05},
		"3 fields":             {0x93, 0x05, 0x90, 0x90},
		"nodes not array":      {0x92, 0x05, 0xc0},
		"node 8 fields":        payload([]byte{0x98, 0xc0, 0xc0, 1, 0xc2, 1, 0xc0, 1, 0xc0, 0xc0}),
		"node 10 fields":       payload(node(0xc0, 0xc0, 0xc0)),
		"height 0":             payload(height(0)),
		"height 256":           payload(height(0xcd, 1, 0)),
		"tombstone not bool":   payload([]byte{0x99, 0xc0, 0xc0, 1, 0x01, 1, 0xc0, 1, 0xc0, 0xc0}),
		"self ptr to itself":   payload(node(0x92, 1, 0, 0xc0)),
		"self ptr forward":     payload(node(0xc0, 0xc0), node(0xc0, 0x92, 1, 5)),
		"self ptr 3 fields":    payload(node(0xc0, 0xc0), node(0x93, 1, 0, 0, 0xc0)),
		"ptr kind 0 as array":  payload(node(0x92, 0, 0, 0xc0)),
		"ptr kind 4":           payload(node(0x93, 4, 1, 1, 0xc0)),
		"ptr kind 256":         payload(node(0x93, 0xcd, 1, 2, 1, 1, 0xc0)),
		"phys ptr 2 fields":    payload(node(0x92, 2, 1, 0xc0)),
		"phys ptr 4 fields":    payload(node(0x94, 2, 1, 1, 1, 0xc0)),
		"ptr 1 field":          payload(node(0x91, 2, 0xc0)),
		"ptr 0 fields":         payload(node(0x90, 0xc0)),
		"off > uint32":         payload(node(0x93, 2, 1, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0)),
		"ptr is int":           payload(node(0x01, 0xc0)),
		"huge node count":      {0x92, 0x05, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0},
		"node count > bytes":   {0x92, 0x05, 0x92, 0x99, 0xc0, 0xc0, 1, 0xc2, 1, 0xc0, 1, 0xc0, 0xc0},
		"huge key":             payload([]byte{0x99, 0xc6, 0x7f, 0xff, 0xff, 0xff, 0xc0, 1, 0xc2, 1, 0xc0}),
		"negative pos":         payload([]byte{0x99, 0xc0, 0xc0, 0xff, 0xc2, 1, 0xc0, 1, 0xc0, 0xc0}),
		"mintomb bool":         payload([]byte{0x99, 0xc0, 0xc0, 1, 0xc2, 1, 0xc2, 1, 0xc0, 0xc0}),
		"intention not uint":   {0x92, 0xc0, 0x90},
		"self ptr off > index": payload(node(0xc0, 0xc0), node(0xc0, 0xc0), node(0x92, 1, 2, 0xc0)),
	}
	for name, data := range cases {
		_, err := Decode(data)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "afterimage: ") {
			t.Errorf("%s: error text %q", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

func TestValidate(t *testing.T) {
	ok := Node{Key: []byte("k"), Height: 1}
	bad := map[string]Node{
		"height 0":           {Key: []byte("k")},
		"unknown kind":       {Height: 1, Left: Ptr{Kind: 7}},
		"nil with pos":       {Height: 1, Right: Ptr{Pos: 1}},
		"nil with off":       {Height: 1, Right: Ptr{Off: 1}},
		"self with pos":      {Height: 1, Left: Ptr{Kind: PtrSelf, Pos: 1}},
		"self to itself":     {Height: 1, Left: SelfPtr(1)},
		"self to later node": {Height: 1, Right: SelfPtr(2)},
	}
	for name, n := range bad {
		a := &Afterimage{Nodes: []Node{ok, n}}
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
	good := &Afterimage{Nodes: []Node{ok, {Height: 1, Left: SelfPtr(0), Right: IntentionPtr(3, 9)}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
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
	want := `key="k" value=nil pos=3 tomb=false maxpos=4 mintomb=none height=1 left=self(0) right=nil`
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
