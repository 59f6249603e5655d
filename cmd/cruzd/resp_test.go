package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{}) // connection-refused noise from killed servers
	code := m.Run()
	if buildOnce.path != "" {
		os.RemoveAll(filepath.Dir(buildOnce.path))
	}
	os.Exit(code)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// encodeCommand is the RESP multibulk encoding of args.
func encodeCommand(args [][]byte) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

func TestReadCommand(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 3<<20) // larger than the read buffer and a chunk
	cmds := [][][]byte{
		{[]byte("SET"), []byte("k"), []byte("v")},
		{[]byte("GET"), []byte("")},
		{[]byte("SET"), []byte("big"), big},
		{[]byte("ECHO"), bytes.Repeat([]byte("y"), arenaArgMax)},
		{[]byte("ECHO"), bytes.Repeat([]byte("z"), arenaArgMax+1)},
	}
	var in []byte
	for _, c := range cmds {
		in = append(in, encodeCommand(c)...)
	}
	in = append(in, "PING\r\n  SET  a   'b c'\n\r\n*0\r\n"...)
	r := newRESPReader(bytes.NewReader(in), readBufSize, 64<<20, 16)
	var got [][][]byte
	for {
		args, err := r.readCommand(nil)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if args != nil {
			got = append(got, args)
		}
	}
	want := append(cmds, [][]byte{[]byte("PING")}, [][]byte{[]byte("SET"), []byte("a"), []byte("b c")})
	if len(got) != len(want) {
		t.Fatalf("parsed %d commands, want %d", len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("command %d: %d args, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if !bytes.Equal(got[i][j], want[i][j]) {
				t.Fatalf("command %d arg %d differs (%d vs %d bytes)", i, j, len(got[i][j]), len(want[i][j]))
			}
		}
	}
	// A clean end between commands is io.EOF; inside one, unexpected.
	r = newRESPReader(bytes.NewReader([]byte("*2\r\n$3\r\nGET\r\n")), readBufSize, 1<<20, 16)
	if _, err := r.readCommand(nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated command: %v", err)
	}
}

func TestParseInt(t *testing.T) {
	for _, tc := range []struct {
		in string
		v  int64
		ok bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"-1", -1, true}, {"9223372036854775807", 1<<63 - 1, true},
		{"-9223372036854775808", -1 << 63, true}, {"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false}, {"", 0, false}, {"-", 0, false}, {"+1", 0, false},
		{"01", 0, false}, {"-0", 0, false}, {" 1", 0, false}, {"1 ", 0, false}, {"1a", 0, false},
		{"18446744073709551616", 0, false}, {"99999999999999999999", 0, false},
	} {
		v, ok := parseInt([]byte(tc.in))
		if v != tc.v || ok != tc.ok {
			t.Errorf("parseInt(%q) = %d, %v; want %d, %v", tc.in, v, ok, tc.v, tc.ok)
		}
	}
}

func TestRespWriter(t *testing.T) {
	var w respWriter
	w.simple("OK")
	w.err("ERR bad\r\nthing")
	w.int(-42)
	w.bulk([]byte("a\r\nb"))
	w.bulk(nil)
	w.null()
	w.arrayLen(2)
	w.nullArray()
	want := "+OK\r\n-ERR bad  thing\r\n:-42\r\n$4\r\na\r\nb\r\n$0\r\n\r\n$-1\r\n*2\r\n*-1\r\n"
	if string(w.b) != want {
		t.Fatalf("got %q, want %q", w.b, want)
	}
}

// FuzzReadCommand feeds arbitrary bytes to the parser (it must never panic
// nor return more than the limits allow), and checks that any list of
// arguments survives a round trip through the multibulk encoding.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
		"PING\r\n",
		"SET \"a\\x00b\" 'c\\'d'\n",
		"*-1\r\n*0\r\n\r\n",
		"*2\r\n$3\r\nGET\r\n$-1\r\n",
		"*1\r\n$99999999999999999999\r\n",
		"*1\r\n$2\r\nab",
		"$3\r\nabc\r\n",
	} {
		f.Add([]byte(s))
	}
	const maxBulk, maxArgs = 1 << 12, 32
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newRESPReader(bytes.NewReader(data), 64, maxBulk, maxArgs)
		for range 1000 {
			args, err := r.readCommand(nil)
			if err != nil {
				var pe *protocolError
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &pe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				break
			}
			if len(args) > maxArgs {
				t.Fatalf("%d args, limit %d", len(args), maxArgs)
			}
			for _, a := range args {
				if len(a) > maxBulk && len(a) > maxInline {
					t.Fatalf("arg of %d bytes", len(a))
				}
			}
		}

		// Round trip: split data into arguments at 0xff bytes.
		args := bytes.Split(data, []byte{0xff})
		if len(args) > maxArgs {
			args = args[:maxArgs]
		}
		enc := encodeCommand(args)
		r = newRESPReader(bytes.NewReader(enc), 64, int64(maxBulk+len(data)), maxArgs)
		got, err := r.readCommand(nil)
		if err != nil {
			t.Fatalf("round trip of %q: %v", enc, err)
		}
		if len(got) != len(args) {
			t.Fatalf("round trip: %d args, want %d", len(got), len(args))
		}
		for i := range args {
			if !bytes.Equal(got[i], args[i]) {
				t.Fatalf("round trip arg %d: %q, want %q", i, got[i], args[i])
			}
		}
		if _, err := r.readCommand(nil); !errors.Is(err, io.EOF) {
			t.Fatalf("after the command: %v", err)
		}
	})
}
