package backup

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func write(t testing.TB, pos uint64, kv ...string) []byte {
	var b bytes.Buffer
	w := NewWriter(&b, pos)
	for i := 0; i+1 < len(kv); i += 2 {
		if err := w.Add([]byte(kv[i]), []byte(kv[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	data := write(t, 42, "a", "1", "b", "", "c\x00", string(bytes.Repeat([]byte("v"), 1000)))
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for r.Next() {
		got = append(got, string(r.Key()), string(r.Value()))
	}
	if r.Err() != nil || r.Position() != 42 || len(got) != 6 || got[4] != "c\x00" || len(got[5]) != 1000 {
		t.Fatalf("read back %q at %d: %v", got, r.Position(), r.Err())
	}
	// Every truncation and every flipped byte is an error, never a shorter
	// backup read as whole.
	for i := 0; i < len(data); i++ {
		for _, bad := range [][]byte{data[:i], flip(data, i)} {
			r, err := NewReader(bytes.NewReader(bad))
			if err != nil {
				continue
			}
			for r.Next() {
			}
			if !errors.Is(r.Err(), ErrCorrupt) {
				t.Fatalf("damage at byte %d read cleanly (%d records)", i, r.Count())
			}
		}
	}
	var b bytes.Buffer
	w := NewWriter(&b, 1)
	w.Add([]byte("b"), nil)
	if err := w.Add([]byte("a"), nil); err == nil {
		t.Fatal("keys out of order accepted")
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x41
	return c
}

// FuzzReader: a Reader never panics, and accepts nothing that does not
// write back to the same bytes.
func FuzzReader(f *testing.F) {
	f.Add(write(f, 0))
	f.Add(write(f, 7, "k", "v"))
	f.Add(write(f, 1<<40, "a", "", "b", "x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		var kv []string
		for r.Next() {
			kv = append(kv, string(r.Key()), string(r.Value()))
		}
		if r.Err() != nil {
			if !errors.Is(r.Err(), ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", r.Err())
			}
			return
		}
		if again := write(t, r.Position(), kv...); !bytes.Equal(again, data) {
			t.Fatal(fmt.Sprintf("accepted %q, which writes back as %q", data, again))
		}
	})
}
