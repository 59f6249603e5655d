package resp

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
)

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

const testBuf = 16 << 10

func TestReadCommand(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 3<<20) // larger than the read buffer and a chunk
	cmds := [][][]byte{
		{[]byte("SET"), []byte("k"), []byte("v")},
		{[]byte("GET"), []byte("")},
		{[]byte("SET"), []byte("big"), big},
		{[]byte("ECHO"), bytes.Repeat([]byte("y"), ArenaArgMax)},
		{[]byte("ECHO"), bytes.Repeat([]byte("z"), ArenaArgMax+1)},
	}
	var in []byte
	for _, c := range cmds {
		in = append(in, encodeCommand(c)...)
	}
	in = append(in, "PING\r\n  SET  a   'b c'\n\r\n*0\r\n"...)
	r := NewReader(bytes.NewReader(in), testBuf, Limits{MaxBulk: 64 << 20, MaxArgs: 16})
	var got [][][]byte
	for {
		args, err := r.ReadCommand(nil)
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
	r = NewReader(bytes.NewReader([]byte("*2\r\n$3\r\nGET\r\n")), testBuf, Limits{MaxBulk: 1 << 20, MaxArgs: 16})
	if _, err := r.ReadCommand(nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated command: %v", err)
	}
}

func TestProtocolErrors(t *testing.T) {
	lim := Limits{MaxBulk: 100, MaxArgs: 3, MaxQuery: 150}
	for _, tc := range []struct {
		in    string
		msg   string
		limit Limit
	}{
		{"*x\r\n", "invalid multibulk length", NoLimit},
		{"*4\r\n", "invalid multibulk length", LimitArgs},
		{"a b c d\r\n", "invalid multibulk length", LimitArgs},
		{"*1\r\n$101\r\n", "invalid bulk length", LimitBulk},
		{"*1\r\n$-2\r\n", "invalid bulk length", NoLimit},
		{"*1\r\n+3\r\n", "expected '+', got '+'", NoLimit},
		{"*1\r\n\x01\r\n", "expected '$', got '\\x1'", NoLimit},
		{"*2\r\n$100\r\n" + string(bytes.Repeat([]byte("a"), 100)) + "\r\n$51\r\n", "query buffer limit reached", LimitQuery},
		{"*1\r\n$1\r\nabc", "expected CRLF after a bulk string", NoLimit},
		{"*1\n", "expected CRLF at the end of a header line", NoLimit},
		{"*1111111111111111111111111111111111\r\n", "too big mbulk count string", NoLimit},
		{"SET \"a\"b\r\n", "unbalanced quotes in request", NoLimit},
		{"SET 'a\r\n", "unbalanced quotes in request", NoLimit},
	} {
		r := NewReader(bytes.NewReader([]byte(tc.in)), testBuf, lim)
		_, err := r.ReadCommand(nil)
		var pe *ProtocolError
		if !errors.As(err, &pe) || !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: %v, want a protocol error", tc.in, err)
			continue
		}
		if tc.msg == "expected '+', got '+'" {
			tc.msg = "expected '$', got '+'"
		}
		if pe.Msg != tc.msg || pe.Limit != tc.limit {
			t.Errorf("%q: %q limit %d, want %q limit %d", tc.in, pe.Msg, pe.Limit, tc.msg, tc.limit)
		}
	}
	// Under the query limit, the same command passes.
	r := NewReader(bytes.NewReader([]byte("*2\r\n$100\r\n"+string(bytes.Repeat([]byte("a"), 100))+"\r\n$50\r\n"+string(bytes.Repeat([]byte("b"), 50))+"\r\n")), testBuf, lim)
	if args, err := r.ReadCommand(nil); err != nil || len(args) != 2 {
		t.Fatalf("150 bytes under a 150-byte query limit: %d args, %v", len(args), err)
	}
}

func TestSplitInline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"PING", []string{"PING"}},
		{" SET  a\tb ", []string{"SET", "a", "b"}},
		{`SET "a b" 'c d'`, []string{"SET", "a b", "c d"}},
		{`"\x41\x4a\xzz\n\r\t\b\a\\\"q"`, []string{"AJxzz\n\r\t\b\a\\\"q"}},
		{`'it\'s' '\n'`, []string{"it's", `\n`}},
		{`"" ''`, []string{"", ""}},
		{`a"b`, []string{`a"b`}},
	} {
		got, _, err := splitInline(nil, nil, []byte(tc.in), 16)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Errorf("%q: word %d %q, want %q", tc.in, i, got[i], tc.want[i])
			}
		}
	}
	for _, in := range []string{`"a`, `'a`, `"a"b`, `'a'b`, `"\"`} {
		if _, _, err := splitInline(nil, nil, []byte(in), 16); !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: %v, want unbalanced quotes", in, err)
		}
	}
}

func TestReady(t *testing.T) {
	for _, tc := range []struct {
		buf   string
		ready bool
	}{
		{"", false},
		{"PI", false},
		{"PING\r\n", true},
		{"*1\r\n$4\r\nPI", false},
		{"*1\r\n$4\r\nPING\r", false},
		{"*1\r\n$4\r\nPING\r\n", true},
		{"*2\r\n$4\r\nPING\r\n", false},
		{"*2\r\n$4\r\nPING\r\n$", false},
		{"*", false},
		{"*0\r\n", true},
		{"*-1\r\n", true},
		{"*x\r\n", true},        // an error, found at once
		{"*1\r\n:3\r\n", true},  // an error, found at once
		{"*1\r\n$-5\r\n", true}, // an error, found at once
		{"*1\r\n$3x\r\n", true}, // an error, found at once
		{"*1\r\n$3\nabc", true}, // an error, found at once
		{"*11111111111111111111", false},
	} {
		if got := commandBuffered([]byte(tc.buf)); got != tc.ready {
			t.Errorf("commandBuffered(%q) = %v, want %v", tc.buf, got, tc.ready)
		}
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
		v, ok := ParseInt([]byte(tc.in))
		if v != tc.v || ok != tc.ok {
			t.Errorf("ParseInt(%q) = %d, %v; want %d, %v", tc.in, v, ok, tc.v, tc.ok)
		}
	}
}

func TestWriter(t *testing.T) {
	var w Writer
	w.Simple("OK")
	w.Err("ERR bad\r\nthing")
	w.Int(-42)
	w.Bulk([]byte("a\r\nb"))
	w.Bulk(nil)
	w.Null()
	w.ArrayLen(2)
	w.NullArray()
	w.BulkString("xy")
	w.OK()
	want := "+OK\r\n-ERR bad  thing\r\n:-42\r\n$4\r\na\r\nb\r\n$0\r\n\r\n$-1\r\n*2\r\n*-1\r\n$2\r\nxy\r\n+OK\r\n"
	if string(w.B) != want {
		t.Fatalf("got %q, want %q", w.B, want)
	}
}

// stallReader hands out data and then reports errStall, as a connection
// with nothing more to read would block.
type stallReader struct{ data []byte }

var errStall = errors.New("would block")

func (s *stallReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, errStall
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

// FuzzReadCommand feeds arbitrary bytes to the parser: it must never panic
// nor return more than the limits allow; Ready must never promise a command
// that then needs more input; and any list of arguments survives a round
// trip through the multibulk encoding.
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
		"PING\r\nPI",
	} {
		f.Add([]byte(s))
	}
	const maxBulk, maxArgs, maxQuery = 1 << 12, 32, 1 << 13
	lim := Limits{MaxBulk: maxBulk, MaxArgs: maxArgs, MaxQuery: maxQuery}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 64, lim)
		for range 1000 {
			args, err := r.ReadCommand(nil)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				break
			}
			if len(args) > maxArgs {
				t.Fatalf("%d args, limit %d", len(args), maxArgs)
			}
			total := 0
			for _, a := range args {
				if len(a) > maxBulk && len(a) > MaxInline {
					t.Fatalf("arg of %d bytes", len(a))
				}
				total += len(a)
			}
			if total > maxQuery && total > MaxInline {
				t.Fatalf("command of %d bytes, limit %d", total, maxQuery)
			}
		}

		// Ready: after the data runs out, the reader stalls; a command it
		// called ready must parse without touching the stall.
		r = NewReader(&stallReader{data: data}, 4096, lim)
		if _, err := r.ReadCommand(nil); err == nil {
			for r.Ready() {
				if _, err := r.ReadCommand(nil); errors.Is(err, errStall) {
					t.Fatalf("Ready, then ReadCommand needed more input")
				} else if err != nil {
					break
				}
			}
		}

		// Round trip: split data into arguments at 0xff bytes.
		args := bytes.Split(data, []byte{0xff})
		if len(args) > maxArgs {
			args = args[:maxArgs]
		}
		enc := encodeCommand(args)
		r = NewReader(bytes.NewReader(enc), 64, Limits{MaxBulk: int64(maxBulk + len(data)), MaxArgs: maxArgs})
		got, err := r.ReadCommand(nil)
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
		if _, err := r.ReadCommand(nil); !errors.Is(err, io.EOF) {
			t.Fatalf("after the command: %v", err)
		}
	})
}
