package intention

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/cruzlog/cruzdb/internal/testutil"
)

// randCount returns small counts mostly, and now and then one past the
// inline capacities or the fixarray limit.
func randCount(r *rand.Rand) int {
	switch x := r.IntN(20); {
	case x == 0:
		return 16 + r.IntN(20)
	case x < 3:
		return 5 + r.IntN(5)
	}
	return r.IntN(4)
}

func randIntention(r *rand.Rand) *Intention {
	in := &Intention{Snapshot: testutil.RandUint(r), Token: r.Uint64()}
	if n := randCount(r); n > 0 {
		in.Reads = make([][]byte, n)
		for i := range in.Reads {
			in.Reads[i] = testutil.RandBytes(r, true)
		}
	}
	if n := randCount(r); n > 0 {
		in.Ranges = make([]Range, n)
		for i := range in.Ranges {
			in.Ranges[i] = Range{Lo: testutil.RandBytes(r, true), Hi: testutil.RandBytes(r, true)}
		}
	}
	if n := randCount(r); n > 0 {
		in.Ops = make([]Op, n)
		for i := range in.Ops {
			op := &in.Ops[i]
			op.Kind = OpKind(1 + r.IntN(2))
			if r.IntN(50) == 0 {
				op.Kind = OpKind(r.IntN(256))
			}
			op.Key = testutil.RandBytes(r, true)
			if op.Kind == OpPut || r.IntN(10) == 0 {
				op.Value = testutil.RandBytes(r, true)
			}
		}
	}
	return in
}

// typical returns an intention of nw writes of 16-byte keys and 100-byte
// values and 2 point reads, the benchmark shape.
func typical(nw int) *Intention {
	in := &Intention{Snapshot: 1234567, Token: 0x9e3779b97f4a7c15}
	for i := range 2 {
		in.Reads = append(in.Reads, bytes.Repeat([]byte{byte('a' + i)}, 16))
	}
	for i := range nw {
		in.Ops = append(in.Ops, Op{
			Kind:  OpPut,
			Key:   bytes.Repeat([]byte{byte('k' + i)}, 16),
			Value: bytes.Repeat([]byte{byte(i)}, 100),
		})
	}
	return in
}

// checkRoundTrip encodes in, decodes it both ways, and checks equality, byte
// stability and the size prediction.
func checkRoundTrip(t *testing.T, in *Intention) {
	t.Helper()
	enc := in.AppendPayload(nil)
	if got := in.EncodedSize(); got != len(enc) {
		t.Fatalf("EncodedSize %d, encoded %d bytes", got, len(enc))
	}
	// Appending to a non-empty buffer leaves the prefix alone.
	prefixed := in.AppendPayload([]byte("xyz"))
	if string(prefixed[:3]) != "xyz" || !bytes.Equal(prefixed[3:], enc) {
		t.Fatalf("AppendPayload to a non-empty buffer differs")
	}
	for name, dec := range map[string]func([]byte) (*Intention, error){"Decode": Decode, "DecodeNoCopy": DecodeNoCopy} {
		got, err := dec(bytes.Clone(enc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("%s: round trip differs:\n got %+v\nwant %+v", name, got, in)
		}
		if again := got.AppendPayload(nil); !bytes.Equal(again, enc) {
			t.Fatalf("%s: re-encoding differs:\n got %x\nwant %x", name, again, enc)
		}
	}
}

func TestRoundTripTable(t *testing.T) {
	k := []byte("key")
	cases := map[string]*Intention{
		"one put":           {Snapshot: 7, Token: 1, Ops: []Op{{Kind: OpPut, Key: k, Value: []byte("v")}}},
		"one delete":        {Ops: []Op{{Kind: OpDelete, Key: k}}},
		"put empty value":   {Ops: []Op{{Kind: OpPut, Key: k, Value: []byte{}}}},
		"put nil value":     {Ops: []Op{{Kind: OpPut, Key: k}}},
		"nil key":           {Ops: []Op{{Kind: OpPut}}},
		"empty key":         {Ops: []Op{{Kind: OpPut, Key: []byte{}}}},
		"unknown kind":      {Ops: []Op{{Kind: 200, Key: k}}},
		"zero":              {},
		"max ints":          {Snapshot: math.MaxUint64, Token: math.MaxUint64},
		"range unbounded":   {Ranges: []Range{{}}},
		"range nil/empty":   {Ranges: []Range{{Lo: nil, Hi: []byte{}}}},
		"range empty/nil":   {Ranges: []Range{{Lo: []byte{}, Hi: nil}}},
		"range empty/empty": {Ranges: []Range{{Lo: []byte{}, Hi: []byte{}}}},
		"range bounded":     {Ranges: []Range{{Lo: []byte("a"), Hi: []byte("m")}, {Lo: []byte("x")}, {Hi: []byte("c")}}},
		"reads":             {Reads: [][]byte{[]byte("a"), {}, nil, []byte("zz")}},
		"bin16 value":       {Ops: []Op{{Kind: OpPut, Key: k, Value: make([]byte, 300)}}},
		"bin32 value":       {Ops: []Op{{Kind: OpPut, Key: k, Value: make([]byte, 70000)}}},
		"2 writes":          typical(2),
		"8 writes":          typical(8),
		"20 writes":         typical(20),
		"array16 reads":     {Reads: make([][]byte, 70000)},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) { checkRoundTrip(t, in) })
	}
}

func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(testutil.Seed(t, 20240611), 1))
	for range 2000 {
		checkRoundTrip(t, randIntention(r))
	}
}

// libEncode encodes in with the msgpack library's Encoder primitives; the
// bytes must equal AppendPayload's.
func libEncode(t testing.TB, in *Intention) []byte {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.EncodeArrayLen(5))
	must(e.EncodeUint(in.Snapshot))
	must(e.EncodeUint(in.Token))
	must(e.EncodeArrayLen(len(in.Reads)))
	for _, k := range in.Reads {
		must(e.EncodeBytes(k))
	}
	must(e.EncodeArrayLen(len(in.Ranges)))
	for _, rg := range in.Ranges {
		must(e.EncodeArrayLen(2))
		must(e.EncodeBytes(rg.Lo))
		must(e.EncodeBytes(rg.Hi))
	}
	must(e.EncodeArrayLen(len(in.Ops)))
	for _, op := range in.Ops {
		must(e.EncodeArrayLen(3))
		must(e.EncodeUint(uint64(op.Kind)))
		must(e.EncodeBytes(op.Key))
		must(e.EncodeBytes(op.Value))
	}
	return buf.Bytes()
}

// libDecode decodes with the msgpack library's Decoder primitives, as a
// reference (and a benchmark baseline).
func libDecode(d *msgpack.Decoder) (*Intention, error) {
	in := new(Intention)
	if _, err := d.DecodeArrayLen(); err != nil {
		return nil, err
	}
	var err error
	if in.Snapshot, err = d.DecodeUint64(); err != nil {
		return nil, err
	}
	if in.Token, err = d.DecodeUint64(); err != nil {
		return nil, err
	}
	n, err := d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n > 0 {
		in.Reads = make([][]byte, n)
		for i := range in.Reads {
			if in.Reads[i], err = d.DecodeBytes(); err != nil {
				return nil, err
			}
		}
	}
	if n, err = d.DecodeArrayLen(); err != nil {
		return nil, err
	}
	if n > 0 {
		in.Ranges = make([]Range, n)
		for i := range in.Ranges {
			if _, err := d.DecodeArrayLen(); err != nil {
				return nil, err
			}
			if in.Ranges[i].Lo, err = d.DecodeBytes(); err != nil {
				return nil, err
			}
			if in.Ranges[i].Hi, err = d.DecodeBytes(); err != nil {
				return nil, err
			}
		}
	}
	if n, err = d.DecodeArrayLen(); err != nil {
		return nil, err
	}
	if n > 0 {
		in.Ops = make([]Op, n)
		for i := range in.Ops {
			if _, err := d.DecodeArrayLen(); err != nil {
				return nil, err
			}
			k, err := d.DecodeUint8()
			if err != nil {
				return nil, err
			}
			in.Ops[i].Kind = OpKind(k)
			if in.Ops[i].Key, err = d.DecodeBytes(); err != nil {
				return nil, err
			}
			if in.Ops[i].Value, err = d.DecodeBytes(); err != nil {
				return nil, err
			}
		}
	}
	return in, nil
}

// TestMsgpackCompatible checks that the payload is exactly what the msgpack
// library writes with its Encoder primitives, that the library reads it
// back to the same value, and that it is one well-formed msgpack value.
func TestMsgpackCompatible(t *testing.T) {
	r := rand.New(rand.NewPCG(testutil.Seed(t, 20240611), 2))
	for i := range 500 {
		in := randIntention(r)
		if i == 0 {
			in = typical(2)
		}
		enc := in.AppendPayload(nil)
		if lib := libEncode(t, in); !bytes.Equal(lib, enc) {
			t.Fatalf("library encoding differs:\n lib %x\nours %x", lib, enc)
		}
		got, err := libDecode(msgpack.NewDecoder(bytes.NewReader(enc)))
		if err != nil {
			t.Fatalf("library decode: %v", err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("library decode differs:\n got %+v\nwant %+v", got, in)
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

// TestDecodeLenient feeds non-canonical but valid msgpack: wide integers,
// non-negative signed integers, str instead of bin.
func TestDecodeLenient(t *testing.T) {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.EncodeArrayLen(5)
	e.EncodeUint64(5) // uint64 for 5
	e.EncodeInt64(9)  // int64 for 9
	e.EncodeArrayLen(1)
	e.EncodeString("r") // fixstr
	e.EncodeArrayLen(1)
	e.EncodeArrayLen(2)
	e.EncodeString("")
	e.EncodeNil()
	e.EncodeArrayLen(1)
	e.EncodeArrayLen(3)
	e.EncodeInt8(1)
	e.EncodeString(string(make([]byte, 40))) // str8
	e.EncodeBytes([]byte("v"))
	want := &Intention{
		Snapshot: 5, Token: 9,
		Reads:  [][]byte{[]byte("r")},
		Ranges: []Range{{Lo: []byte{}}},
		Ops:    []Op{{Kind: OpPut, Key: make([]byte, 40), Value: []byte("v")}},
	}
	got, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestDecodeOwnership(t *testing.T) {
	in := typical(2)
	in.Ranges = []Range{{Lo: []byte("a"), Hi: []byte("b")}}
	enc := in.AppendPayload(nil)

	// Decode copies: scribbling over the payload changes nothing.
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	scribbled := bytes.Clone(enc)
	for i := range scribbled {
		scribbled[i] = 0xee
	}
	copy(enc, scribbled)
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("Decode result aliases the payload")
	}

	// Both modes limit capacities: appending to a slice never overwrites
	// its neighbour.
	enc = in.AppendPayload(nil)
	for name, dec := range map[string]func([]byte) (*Intention, error){"Decode": Decode, "DecodeNoCopy": DecodeNoCopy} {
		got, err := dec(bytes.Clone(enc))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range [][]byte{got.Reads[0], got.Ranges[0].Lo, got.Ops[0].Key, got.Ops[0].Value} {
			if cap(s) != len(s) {
				t.Fatalf("%s: slice of len %d has cap %d", name, len(s), cap(s))
			}
		}
		_ = append(got.Ops[0].Key, "XXXX"...)
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("%s: an append changed the intention", name)
		}
	}

	// DecodeNoCopy aliases.
	nc, err := DecodeNoCopy(enc)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(enc, in.Ops[1].Value)
	enc[i] ^= 0xff
	if nc.Ops[1].Value[0] != enc[i] {
		t.Fatalf("DecodeNoCopy does not alias the payload")
	}
}

func TestDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	enc := typical(2).AppendPayload(nil)
	for name, tc := range map[string]struct {
		dec  func([]byte) (*Intention, error)
		max  float64
		data []byte
	}{
		"Decode 2w":       {Decode, 2, enc},
		"DecodeNoCopy 2w": {DecodeNoCopy, 1, enc},
		"Decode 8w":       {Decode, 3, typical(8).AppendPayload(nil)},
	} {
		n := testing.AllocsPerRun(100, func() {
			if _, err := tc.dec(tc.data); err != nil {
				t.Fatal(err)
			}
		})
		if n > tc.max {
			t.Errorf("%s: %v allocs, want at most %v", name, n, tc.max)
		}
	}
	in := typical(8)
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = in.AppendPayload(buf[:0]) }); n != 0 {
		t.Errorf("AppendPayload into a large enough buffer: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = in.AppendPayload(nil) }); n != 1 {
		t.Errorf("AppendPayload(nil): %v allocs, want 1", n)
	}
}

func TestDecodeMalformed(t *testing.T) {
	valid := typical(2)
	valid.Ranges = []Range{{Lo: []byte("a")}}
	enc := valid.AppendPayload(nil)

	// Every truncation.
	for n := range len(enc) {
		if _, err := Decode(enc[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncation to %d bytes: err %v", n, err)
		}
	}
	// Trailing bytes.
	if _, err := Decode(append(bytes.Clone(enc), 0xc0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: err %v", err)
	}

	cases := map[string][]byte{
		"nil":               nil,
		"not an array":      {0xc0},
		"4 fields":          {0x94, 0, 0, 0x90, 0x90},
		"6 fields":          {0x96, 0, 0, 0x90, 0x90, 0x90, 0x90},
		"negative int":      {0x95, 0xd0, 0xff, 0, 0x90, 0x90, 0x90},
		"negative fixint":   {0x95, 0xff, 0, 0x90, 0x90, 0x90},
		"string snapshot":   {0x95, 0xa1, 'x', 0, 0x90, 0x90, 0x90},
		"reads not array":   {0x95, 0, 0, 0xc0, 0x90, 0x90},
		"read key int":      {0x95, 0, 0, 0x91, 0x01, 0x90, 0x90},
		"range 1 field":     {0x95, 0, 0, 0x90, 0x91, 0x91, 0xc0, 0x90},
		"range 3 fields":    {0x95, 0, 0, 0x90, 0x91, 0x93, 0xc0, 0xc0, 0xc0, 0x90},
		"range lo bool":     {0x95, 0, 0, 0x90, 0x91, 0x92, 0xc2, 0xc0, 0x90},
		"op 2 fields":       {0x95, 0, 0, 0x90, 0x90, 0x91, 0x92, 0x01, 0xc0},
		"op 4 fields":       {0x95, 0, 0, 0x90, 0x90, 0x91, 0x94, 0x01, 0xc0, 0xc0, 0xc0},
		"op kind 256":       {0x95, 0, 0, 0x90, 0x90, 0x91, 0x93, 0xcd, 0x01, 0x00, 0xc0, 0xc0},
		"op kind nil":       {0x95, 0, 0, 0x90, 0x90, 0x91, 0x93, 0xc0, 0xc0, 0xc0},
		"huge reads":        {0x95, 0, 0, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x90, 0x90},
		"huge ops":          {0x95, 0, 0, 0x90, 0x90, 0xdd, 0x7f, 0xff, 0xff, 0xff},
		"huge array16":      {0x95, 0, 0, 0xdc, 0xff, 0xff, 0x90, 0x90},
		"huge bin32":        {0x95, 0, 0, 0x91, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x90, 0x90},
		"huge str32":        {0x95, 0, 0, 0x91, 0xdb, 0x80, 0, 0, 0, 0x90, 0x90},
		"ops too few bytes": {0x95, 0, 0, 0x90, 0x90, 0x92, 0x93, 0x01, 0xc0, 0xc0},
	}
	for name, data := range cases {
		_, err := Decode(data)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
			continue
		}
		if _, err := DecodeNoCopy(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: DecodeNoCopy err %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

// TestDecodeHugeLengthNoAlloc checks that a length the payload cannot hold
// is refused before anything is allocated from it.
func TestDecodeHugeLengthNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	data := []byte{0x95, 0, 0, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x90, 0x90}
	var m1, m2 runtimeMem
	m1.read()
	for range 10 {
		if _, err := Decode(data); err == nil {
			t.Fatal("decoded")
		}
	}
	m2.read()
	if d := m2.total - m1.total; d > 1<<20 {
		t.Fatalf("refusing a huge length allocated %d bytes", d)
	}
}

func TestValidate(t *testing.T) {
	k := []byte("k")
	long := make([]byte, 11)
	cases := []struct {
		name string
		in   Intention
		ok   bool
	}{
		{"put", Intention{Ops: []Op{{Kind: OpPut, Key: k, Value: []byte("v")}}}, true},
		{"put empty value", Intention{Ops: []Op{{Kind: OpPut, Key: k, Value: []byte{}}}}, true},
		{"put nil value", Intention{Ops: []Op{{Kind: OpPut, Key: k}}}, true},
		{"delete", Intention{Ops: []Op{{Kind: OpDelete, Key: k}}}, true},
		{"max sizes", Intention{Ops: []Op{{Kind: OpPut, Key: make([]byte, 10), Value: make([]byte, 20)}}}, true},
		{"inverted range", Intention{Ranges: []Range{{Lo: []byte("z"), Hi: []byte("a")}}, Ops: []Op{{Kind: OpDelete, Key: k}}}, true},
		{"long read key", Intention{Reads: [][]byte{long}, Ops: []Op{{Kind: OpDelete, Key: k}}}, true},
		{"duplicate keys", Intention{Ops: []Op{{Kind: OpPut, Key: k}, {Kind: OpDelete, Key: k}}}, true},
		{"no ops", Intention{Reads: [][]byte{k}}, false},
		{"unknown kind", Intention{Ops: []Op{{Kind: 4, Key: k}}}, false},
		{"range delete", Intention{Ops: []Op{{Kind: OpDeleteRange, Key: []byte("a"), Value: []byte("b")}}}, true},
		{"range delete unbounded", Intention{Ops: []Op{{Kind: OpDeleteRange, Key: []byte{0}}}}, true},
		{"range delete empty range", Intention{Ops: []Op{{Kind: OpDeleteRange, Key: []byte("b"), Value: []byte("b")}}}, false},
		{"range delete inverted", Intention{Ops: []Op{{Kind: OpDeleteRange, Key: []byte("b"), Value: []byte("a")}}}, false},
		{"range delete empty start", Intention{Ops: []Op{{Kind: OpDeleteRange, Key: []byte{}}}}, false},
		{"kind 0", Intention{Ops: []Op{{Kind: 0, Key: k}}}, false},
		{"nil key", Intention{Ops: []Op{{Kind: OpPut}}}, false},
		{"empty key", Intention{Ops: []Op{{Kind: OpPut, Key: []byte{}}}}, false},
		{"long key", Intention{Ops: []Op{{Kind: OpPut, Key: long}}}, false},
		{"long value", Intention{Ops: []Op{{Kind: OpPut, Key: k, Value: make([]byte, 21)}}}, false},
		{"delete with value", Intention{Ops: []Op{{Kind: OpDelete, Key: k, Value: []byte("v")}}}, false},
		{"delete with empty value", Intention{Ops: []Op{{Kind: OpDelete, Key: k, Value: []byte{}}}}, false},
		{"empty read", Intention{Reads: [][]byte{{}}, Ops: []Op{{Kind: OpPut, Key: k}}}, false},
		{"nil read", Intention{Reads: [][]byte{nil}, Ops: []Op{{Kind: OpPut, Key: k}}}, false},
		{"second op bad", Intention{Ops: []Op{{Kind: OpPut, Key: k}, {Kind: OpPut, Key: long}}}, false},
	}
	for _, tc := range cases {
		err := tc.in.Validate(10, 20)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}

func TestRange(t *testing.T) {
	b := func(s string) []byte { return []byte(s) }
	cases := []struct {
		r     Range
		empty bool
		in    []string
		out   []string
	}{
		{Range{}, false, []string{"", "a", "zzz"}, nil},
		{Range{Lo: b("b")}, false, []string{"b", "c"}, []string{"", "a"}},
		{Range{Hi: b("b")}, false, []string{"", "a", "az"}, []string{"b", "c"}},
		{Range{Lo: b("b"), Hi: b("d")}, false, []string{"b", "c"}, []string{"a", "d"}},
		{Range{Lo: b("d"), Hi: b("b")}, true, nil, []string{"a", "b", "c", "d"}},
		{Range{Lo: b("b"), Hi: b("b")}, true, nil, []string{"b"}},
		{Range{Hi: b("")}, true, nil, []string{"", "a"}},
		{Range{Lo: b(""), Hi: b("")}, true, nil, []string{""}},
		{Range{Lo: b("")}, false, []string{"", "a"}, nil},
	}
	for _, tc := range cases {
		if got := tc.r.Empty(); got != tc.empty {
			t.Errorf("%q..%q: Empty %v", tc.r.Lo, tc.r.Hi, got)
		}
		for _, k := range tc.in {
			if !tc.r.Contains(b(k)) {
				t.Errorf("%q..%q should contain %q", tc.r.Lo, tc.r.Hi, k)
			}
		}
		for _, k := range tc.out {
			if tc.r.Contains(b(k)) {
				t.Errorf("%q..%q should not contain %q", tc.r.Lo, tc.r.Hi, k)
			}
		}
	}
}

func TestOpKindString(t *testing.T) {
	for k, want := range map[OpKind]string{OpPut: "put", OpDelete: "delete", 9: "opkind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("%d: %q, want %q", k, got, want)
		}
	}
}
