package entry

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/vmihailenco/msgpack/v5"
)

var allTypes = []Type{TypeHeader, TypeIntention, TypeAfterimage, TypeCheckpoint}

func TestEnvelopeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(testutil.Seed(t, 20240611), 1))
	payloads := [][]byte{nil, {}, {0}, []byte("hello"), make([]byte, 1000)}
	for range 200 {
		p := make([]byte, r.IntN(3000))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		payloads = append(payloads, p)
	}
	for _, p := range payloads {
		for _, typ := range allTypes {
			enc := Encode(nil, typ, p)
			if len(enc) != FrameSize+len(p) {
				t.Fatalf("frame of %d bytes for a %d-byte payload", len(enc), len(p))
			}
			gotT, gotP, err := Decode(42, enc)
			if err != nil {
				t.Fatal(err)
			}
			if gotT != typ || !bytes.Equal(gotP, p) {
				t.Fatalf("got %v %x, want %v %x", gotT, gotP, typ, p)
			}
			// The payload is a sub-slice of the input.
			if len(gotP) > 0 && &gotP[0] != &enc[FrameSize] {
				t.Fatal("payload is not a sub-slice of the entry")
			}
			if again := Encode(nil, gotT, gotP); !bytes.Equal(again, enc) {
				t.Fatal("re-encoding differs")
			}
			// Appending to a buffer leaves its prefix alone.
			pre := Encode([]byte("abc"), typ, p)
			if string(pre[:3]) != "abc" || !bytes.Equal(pre[3:], enc) {
				t.Fatal("Encode to a non-empty buffer differs")
			}
		}
	}
}

// TestEnvelopeBytes pins the layout.
func TestEnvelopeBytes(t *testing.T) {
	enc := Encode(nil, TypeIntention, []byte{0x90})
	if enc[0] != 0xC2 || enc[1] != 0xDB || enc[2] != Version || enc[3] != byte(TypeIntention) || enc[8] != 0x90 {
		t.Fatalf("layout: % x", enc)
	}
	// CRC-32C (little-endian) over version, type and payload.
	tab := crc32.MakeTable(crc32.Castagnoli)
	if c := crc32.Checksum([]byte("123456789"), tab); c != 0xE3069283 {
		t.Fatalf("not CRC-32C: %08x", c)
	}
	c := crc32.Checksum([]byte{1, 2, 0x90}, tab)
	want := []byte{0xC2, 0xDB, 1, 2, byte(c), byte(c >> 8), byte(c >> 16), byte(c >> 24), 0x90}
	if !bytes.Equal(enc, want) {
		t.Fatalf("got % x, want % x", enc, want)
	}
}

// checkCorrupt checks that err is a corruption error naming pos.
func checkCorrupt(t *testing.T, err error, pos uint64, what string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: err %v, want ErrCorrupt", what, err)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Pos != pos {
		t.Fatalf("%s: err %v is not a *CorruptError for position %d", what, err, pos)
	}
	prefix := "cruzdb: log position " + strconv.FormatUint(pos, 10) + ": corrupt log entry: "
	if !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("%s: error text %q", what, err)
	}
}

// TestEveryBitFlip flips every bit of entries of every type and checks that
// each flip is detected as corruption.
func TestEveryBitFlip(t *testing.T) {
	payloads := [][]byte{
		{},
		{0x90},
		EncodeHeader(NewHeader(1000, 1024, 1<<20))[FrameSize:],
		(&intention.Intention{Snapshot: 3, Ops: []intention.Op{{Kind: intention.OpPut, Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 300)}}}).AppendPayload(nil),
	}
	for _, p := range payloads {
		for _, typ := range allTypes {
			enc := Encode(nil, typ, p)
			for bit := range len(enc) * 8 {
				bad := bytes.Clone(enc)
				bad[bit/8] ^= 1 << (bit % 8)
				_, _, err := Decode(17, bad)
				checkCorrupt(t, err, 17, "flip of bit "+strconv.Itoa(bit))
			}
		}
	}
}

func TestTruncationsAndExtensions(t *testing.T) {
	for _, typ := range allTypes {
		enc := Encode(nil, typ, bytes.Repeat([]byte{0xab, 0}, 100))
		for n := range len(enc) {
			_, _, err := Decode(9, enc[:n])
			checkCorrupt(t, err, 9, "truncation to "+strconv.Itoa(n))
		}
		for _, extra := range [][]byte{{0}, {0xff}, {0, 0, 0, 0}, enc} {
			_, _, err := Decode(9, append(bytes.Clone(enc), extra...))
			checkCorrupt(t, err, 9, "extension")
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good := Encode(nil, TypeHeader, []byte{1, 2, 3})
	withCRC := func(b []byte) []byte {
		c := checksum(b)
		b[4], b[5], b[6], b[7] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
		return b
	}
	mod := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return withCRC(b)
	}
	cases := map[string]struct {
		data   []byte
		reason string
	}{
		"empty":        {nil, "short frame of 0 bytes"},
		"short":        {good[:7], "short frame of 7 bytes"},
		"bad magic":    {mod(0, 0), "bad magic 0x00db"},
		"version 0":    {mod(2, 0), "unknown envelope version 0"},
		"version 2":    {mod(2, 2), "unknown envelope version 2"},
		"type 0":       {mod(3, 0), "unknown entry type 0"},
		"type 5":       {mod(3, 5), "unknown entry type 5"},
		"bad checksum": {append(bytes.Clone(good[:FrameSize]), 1, 2, 4), "checksum mismatch"},
	}
	for name, tc := range cases {
		_, _, err := Decode(123, tc.data)
		checkCorrupt(t, err, 123, name)
		if !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: %q does not say %q", name, err, tc.reason)
		}
	}
	_, _, err := Decode(123, cases["type 5"].data)
	if want := "cruzdb: log position 123: corrupt log entry: unknown entry type 5"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{TypeHeader: "header", TypeIntention: "intention", TypeAfterimage: "afterimage", TypeCheckpoint: "checkpoint", 0: "type(0)", 77: "type(77)"} {
		if got := typ.String(); got != want {
			t.Errorf("%d: %q, want %q", typ, got, want)
		}
	}
}

func TestCorrupt(t *testing.T) {
	if Corrupt(3, nil) != nil {
		t.Fatal("Corrupt(nil) is not nil")
	}
	_, derr := intention.Decode([]byte{0xc0})
	err := Corrupt(17, derr)
	checkCorrupt(t, err, 17, "Corrupt")
	if !errors.Is(err, intention.ErrMalformed) {
		t.Fatalf("%v does not wrap intention.ErrMalformed", err)
	}
	want := "cruzdb: log position 17: corrupt log entry: intention: malformed payload: record: msgpack code 0xc0 where array expected at offset 0"
	if err.Error() != want {
		t.Fatalf("got  %q\nwant %q", err, want)
	}
}

func TestHeader(t *testing.T) {
	h := NewHeader(1000, 1024, 1<<20)
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	p := h.MarshalPayload()
	if !bytes.Equal(p, h.AppendPayload(nil)) {
		t.Fatal("MarshalPayload and AppendPayload differ")
	}
	got, err := DecodeHeader(p)
	if err != nil || *got != *h {
		t.Fatalf("got %+v, %v", got, err)
	}
	if !bytes.Equal(got.MarshalPayload(), p) {
		t.Fatal("re-encoding differs")
	}
	// A valid msgpack value: what the library reads.
	var v []uint64
	if err := msgpack.Unmarshal(p, &v); err != nil || !reflect.DeepEqual(v, []uint64{1, 1000, 1024, 1 << 20}) {
		t.Fatalf("library reads %v, %v", v, err)
	}
	// Extremes.
	for _, h := range []*Header{
		NewHeader(1, 1, 1),
		NewHeader(math.MaxUint64, math.MaxUint32, math.MaxUint32),
	} {
		got, err := DecodeHeader(h.MarshalPayload())
		if err != nil || *got != *h {
			t.Fatalf("%+v: got %+v, %v", h, got, err)
		}
	}

	// The full entry.
	enc := EncodeHeader(h)
	got, err = DecodeHeaderEntry(0, enc)
	if err != nil || *got != *h {
		t.Fatalf("entry: got %+v, %v", got, err)
	}
	if !bytes.Equal(enc, Encode(nil, TypeHeader, p)) || !bytes.Equal(AppendHeader([]byte("x"), h)[1:], enc) {
		t.Fatal("EncodeHeader differs from Encode")
	}
}

func TestHeaderValidate(t *testing.T) {
	for name, h := range map[string]Header{
		"format 0":    {FormatVersion: 0, ConflictWindow: 1, MaxKeySize: 1, MaxValueSize: 1},
		"format 2":    {FormatVersion: 2, ConflictWindow: 1, MaxKeySize: 1, MaxValueSize: 1},
		"window 0":    {FormatVersion: 1, ConflictWindow: 0, MaxKeySize: 1, MaxValueSize: 1},
		"key size 0":  {FormatVersion: 1, ConflictWindow: 1, MaxKeySize: 0, MaxValueSize: 1},
		"value size0": {FormatVersion: 1, ConflictWindow: 1, MaxKeySize: 1, MaxValueSize: 0},
	} {
		err := h.Validate()
		if !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("%s: Validate %v", name, err)
		}
		_, err = DecodeHeader(h.MarshalPayload())
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("%s: DecodeHeader %v", name, err)
		}
		_, err = DecodeHeaderEntry(0, EncodeHeader(&h))
		checkCorrupt(t, err, 0, name)
		if !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("%s: DecodeHeaderEntry %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

func TestDecodeHeaderMalformed(t *testing.T) {
	p := NewHeader(5, 6, 7).MarshalPayload()
	for n := range len(p) {
		if _, err := DecodeHeader(p[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncation to %d: %v", n, err)
		}
	}
	for name, data := range map[string][]byte{
		"trailing":        append(bytes.Clone(p), 0),
		"3 fields":        {0x93, 1, 5, 6},
		"5 fields":        {0x95, 1, 5, 6, 7, 8},
		"not array":       {0xc0},
		"format > uint32": {0x94, 0xcf, 0, 0, 0, 1, 0, 0, 0, 1, 5, 6, 7},
		"key > uint32":    {0x94, 1, 5, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 7},
		"value string":    {0x94, 1, 5, 6, 0xa1, 'x'},
		"window negative": {0x94, 1, 0xd0, 0xfb, 6, 7},
	} {
		_, err := DecodeHeader(data)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
		_, err = DecodeHeaderEntry(4, Encode(nil, TypeHeader, data))
		checkCorrupt(t, err, 4, name)
		t.Logf("%s: %v", name, err)
	}
}

func TestRecordEntries(t *testing.T) {
	in := &intention.Intention{
		Snapshot: 10, Token: 99,
		Reads:  [][]byte{[]byte("r")},
		Ranges: []intention.Range{{Lo: []byte("a"), Hi: []byte{}}},
		Ops:    []intention.Op{{Kind: intention.OpPut, Key: []byte("k"), Value: []byte("v")}, {Kind: intention.OpDelete, Key: []byte("d")}},
	}
	enc := AppendIntention(nil, in)
	if !bytes.Equal(enc, Encode(nil, TypeIntention, in.AppendPayload(nil))) {
		t.Fatal("AppendIntention differs from Encode")
	}
	if pre := AppendIntention([]byte("xy"), in); !bytes.Equal(pre[2:], enc) || string(pre[:2]) != "xy" {
		t.Fatal("AppendIntention to a non-empty buffer differs")
	}
	gotIn, err := DecodeIntentionEntry(11, enc)
	if err != nil || !reflect.DeepEqual(gotIn, in) {
		t.Fatalf("intention: %+v, %v", gotIn, err)
	}

	a := &afterimage.Afterimage{Intention: 11, Nodes: []afterimage.Node{
		{Key: []byte("k"), Value: []byte("v"), Pos: 11, MaxPos: 11, MinTomb: afterimage.NoTombstone, Height: 1},
		{Key: []byte("m"), Pos: 11, MaxPos: 11, MinTomb: 11, Tombstone: true, Height: 2, Left: afterimage.SelfPtr(0), Right: afterimage.IntentionPtr(5, 2)},
	}}
	aenc := AppendAfterimage(nil, a)
	if !bytes.Equal(aenc, Encode(nil, TypeAfterimage, a.AppendPayload(nil))) {
		t.Fatal("AppendAfterimage differs from Encode")
	}
	gotA, err := DecodeAfterimageEntry(12, aenc)
	if err != nil || !reflect.DeepEqual(gotA, a) {
		t.Fatalf("afterimage: %+v, %v", gotA, err)
	}

	// Wrong types are ErrWrongType, not corruption.
	if _, err := DecodeAfterimageEntry(11, enc); !errors.Is(err, ErrWrongType) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("afterimage from an intention entry: %v", err)
	}
	if _, err := DecodeIntentionEntry(12, aenc); !errors.Is(err, ErrWrongType) {
		t.Fatalf("intention from an afterimage entry: %v", err)
	}
	if _, err := DecodeHeaderEntry(12, aenc); !errors.Is(err, ErrWrongType) {
		t.Fatalf("header from an afterimage entry: %v", err)
	}

	// Intact envelopes with payloads that do not decode are corruption that
	// names the position and wraps the package's sentinel.
	_, err = DecodeIntentionEntry(31, Encode(nil, TypeIntention, []byte{0x95}))
	checkCorrupt(t, err, 31, "bad intention payload")
	if !errors.Is(err, intention.ErrMalformed) {
		t.Fatalf("%v does not wrap intention.ErrMalformed", err)
	}
	_, err = DecodeAfterimageEntry(32, Encode(nil, TypeAfterimage, []byte{0x92, 1, 0x91}))
	checkCorrupt(t, err, 32, "bad afterimage payload")
	if !errors.Is(err, afterimage.ErrMalformed) {
		t.Fatalf("%v does not wrap afterimage.ErrMalformed", err)
	}
	// And a corrupt envelope is reported as such.
	bad := bytes.Clone(enc)
	bad[len(bad)-1] ^= 1
	_, err = DecodeIntentionEntry(33, bad)
	checkCorrupt(t, err, 33, "flipped intention")
}

func TestEncodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	in := &intention.Intention{Ops: []intention.Op{{Kind: intention.OpPut, Key: []byte("k"), Value: make([]byte, 100)}}}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = AppendIntention(buf[:0], in) }); n != 0 {
		t.Errorf("AppendIntention into room: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = AppendIntention(nil, in) }); n != 1 {
		t.Errorf("AppendIntention(nil): %v allocs", n)
	}
	enc := AppendIntention(nil, in)
	if n := testing.AllocsPerRun(100, func() { Decode(1, enc) }); n != 0 {
		t.Errorf("Decode: %v allocs", n)
	}
}
