package wire

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func lib(t *testing.T, f func(e *msgpack.Encoder) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f(msgpack.NewEncoder(&buf)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestUintBoundaries(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		got := AppendUint(nil, v)
		if want := lib(t, func(e *msgpack.Encoder) error { return e.EncodeUint(v) }); !bytes.Equal(got, want) {
			t.Errorf("%d: % x, library % x", v, got, want)
		}
		if UintSize(v) != len(got) {
			t.Errorf("%d: UintSize %d, wrote %d", v, UintSize(v), len(got))
		}
		r := NewReader(got)
		if back, err := r.Uint(); err != nil || back != v || r.Len() != 0 {
			t.Errorf("%d: read %d, %v", v, back, err)
		}
		// Every wider form, and signed forms, read the same.
		for _, wide := range [][]byte{
			lib(t, func(e *msgpack.Encoder) error { return e.EncodeUint64(v) }),
			lib(t, func(e *msgpack.Encoder) error { return e.EncodeInt64(int64(v)) }),
		} {
			if v > math.MaxInt64 && wide[0] == codeInt64 {
				continue
			}
			r := NewReader(wide)
			if back, err := r.Uint(); err != nil || back != v {
				t.Errorf("%d from % x: %d, %v", v, wide, back, err)
			}
		}
	}
	for _, neg := range []int64{-1, -32, -33, -200, -40000, math.MinInt64} {
		r := NewReader(lib(t, func(e *msgpack.Encoder) error { return e.EncodeInt(neg) }))
		if _, err := r.Uint(); err == nil {
			t.Errorf("%d read as unsigned", neg)
		}
	}
}

func TestBytesAndArrays(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536} {
		v := bytes.Repeat([]byte{'x'}, n)
		got := AppendBytes(nil, v)
		if want := lib(t, func(e *msgpack.Encoder) error { return e.EncodeBytes(v) }); !bytes.Equal(got, want) {
			t.Errorf("bytes %d: header % x, library % x", n, got[:3], want[:3])
		}
		if BytesSize(v) != len(got) {
			t.Errorf("bytes %d: BytesSize %d, wrote %d", n, BytesSize(v), len(got))
		}
		r := NewReader(got)
		if back, err := r.Bytes(); err != nil || !bytes.Equal(back, v) || back == nil || cap(back) != len(back) {
			t.Errorf("bytes %d: read back %d bytes, %v", n, len(back), err)
		}
		str := lib(t, func(e *msgpack.Encoder) error { return e.EncodeString(string(v)) })
		r = NewReader(str)
		if back, err := r.BytesOrNil(); err != nil || !bytes.Equal(back, v) {
			t.Errorf("str %d: %v", n, err)
		}
		arr := AppendArrayLen(nil, n)
		if want := lib(t, func(e *msgpack.Encoder) error { return e.EncodeArrayLen(n) }); !bytes.Equal(arr, want) {
			t.Errorf("array %d: % x, library % x", n, arr, want)
		}
		if ArrayLenSize(n) != len(arr) {
			t.Errorf("array %d: ArrayLenSize %d, wrote %d", n, ArrayLenSize(n), len(arr))
		}
		r = NewReader(append(arr, make([]byte, n)...))
		if back, err := r.ArrayLen(1); err != nil || back != n {
			t.Errorf("array %d: read %d, %v", n, back, err)
		}
		// One byte short of n one-byte elements is refused.
		if n > 0 {
			r = NewReader(append(bytes.Clone(arr), make([]byte, n-1)...))
			if _, err := r.ArrayLen(1); err == nil {
				t.Errorf("array %d accepted with %d bytes", n, n-1)
			}
		}
	}
	if got := AppendBytes(nil, nil); !bytes.Equal(got, []byte{codeNil}) {
		t.Errorf("nil bytes: % x", got)
	}
	r := NewReader([]byte{codeNil})
	if _, err := r.Bytes(); err == nil {
		t.Error("Bytes accepts nil")
	}
	r = NewReader([]byte{codeNil})
	if b, err := r.BytesOrNil(); err != nil || b != nil {
		t.Errorf("BytesOrNil: %v, %v", b, err)
	}
}

func TestBool(t *testing.T) {
	for _, v := range []bool{false, true} {
		enc := AppendBool(nil, v)
		if want := lib(t, func(e *msgpack.Encoder) error { return e.EncodeBool(v) }); !bytes.Equal(enc, want) {
			t.Errorf("%v: % x", v, enc)
		}
		r := NewReader(enc)
		if back, err := r.Bool(); err != nil || back != v {
			t.Errorf("%v: %v, %v", v, back, err)
		}
	}
	r := NewReader([]byte{0})
	if _, err := r.Bool(); err == nil {
		t.Error("0 read as bool")
	}
}

func TestErrors(t *testing.T) {
	r := NewReader([]byte{1, 2})
	r.Uint()
	err := r.Finish()
	var we *Error
	if !errors.As(err, &we) || we.Off != 1 || !strings.Contains(err.Error(), "1 trailing bytes at offset 1") {
		t.Fatalf("Finish: %v", err)
	}
	for _, data := range [][]byte{{}, {codeUint16, 1}, {codeUint64, 1, 2, 3}, {codeBin8}, {codeBin8, 3, 1}, {codeBin16, 0}, {codeStr32, 0, 0, 0}, {codeArray16, 0}, {codeArray32, 0, 0}} {
		r := NewReader(data)
		_, e1 := r.Uint()
		r = NewReader(data)
		_, e2 := r.BytesOrNil()
		r = NewReader(data)
		_, e3 := r.ArrayLen(1)
		if e1 == nil && e2 == nil && e3 == nil {
			t.Errorf("% x read without error", data)
		}
		if r.Offset() != 0 {
			t.Errorf("% x: a failed read moved the offset", data)
		}
	}
	r = NewReader([]byte{codeUint16, 1, 0})
	if _, err := r.UintMax(255); err == nil || r.Offset() != 0 {
		t.Errorf("UintMax: %v, offset %d", err, r.Offset())
	}
}
