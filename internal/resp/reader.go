package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
)

const (
	// MaxInline bounds an inline command line (Redis: 64 KiB).
	MaxInline = 64 << 10
	// maxHeaderLine bounds a "*N" or "$N" line: a 64-bit number and CRLF fit
	// in far less.
	maxHeaderLine = 32
	// ArenaArgMax: bulks up to this size are copied into the reader's arena;
	// larger ones get their own allocation.
	ArenaArgMax = 16 << 10
	// bigBulkChunk is how much of a large bulk is allocated ahead of the data
	// arriving, so that a client announcing a huge bulk and sending nothing
	// does not pin that much memory.
	bigBulkChunk = 1 << 20
	// keepArena is the largest arena kept by ResetArena.
	keepArena = 4 << 20
)

// ErrProtocol is what every *ProtocolError matches with errors.Is.
var ErrProtocol = errors.New("resp: protocol error")

// Limit names the bound a *ProtocolError exceeded.
type Limit uint8

const (
	// NoLimit: the input is malformed.
	NoLimit Limit = iota
	// LimitArgs: more arguments than Limits.MaxArgs.
	LimitArgs
	// LimitBulk: a bulk longer than Limits.MaxBulk.
	LimitBulk
	// LimitQuery: one command's arguments add up to more than
	// Limits.MaxQuery bytes.
	LimitQuery
)

// ProtocolError is malformed or over-limit input. A server answers
// "ERR " + Error() and closes the connection.
type ProtocolError struct {
	// Msg is Redis's wording ("invalid bulk length", ...).
	Msg string
	// Limit is the bound exceeded, or NoLimit; Max is its value.
	Limit Limit
	Max   int64
}

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

// Is makes errors.Is(err, ErrProtocol) true.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

func protoErr(msg string) error { return &ProtocolError{Msg: msg} }

// Limits bound what one command may take.
type Limits struct {
	// MaxBulk is the largest bulk string, in bytes. Required (> 0).
	MaxBulk int64
	// MaxArgs is the most arguments of one command. Required (> 0).
	MaxArgs int
	// MaxQuery bounds the bytes of one command's arguments together
	// (Redis's client-query-buffer-limit). Zero means no bound beyond
	// MaxArgs x MaxBulk.
	MaxQuery int64
}

// Reader parses commands from a connection.
type Reader struct {
	br  *bufio.Reader
	lim Limits
	// arena holds the bytes of small arguments since the last ResetArena.
	// Arguments that must outlive that are copied by the caller.
	arena []byte
	// line accumulates an inline line longer than the bufio buffer.
	line []byte
}

// NewReader reads from r through a buffer of bufSize bytes.
func NewReader(r io.Reader, bufSize int, lim Limits) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), lim: lim}
}

// ResetArena makes the arena's memory reusable. Arguments returned before
// must not be used afterwards.
func (r *Reader) ResetArena() {
	if cap(r.arena) > keepArena {
		r.arena = nil // do not keep a big arena for an idle connection
	}
	r.arena = r.arena[:0]
}

// Buffered reports how many bytes are already read from the connection and
// not yet parsed.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Ready reports whether ReadCommand can return without reading from the
// connection: a whole command (or the malformed input that ends it) is
// buffered. False when nothing or only part of a command is buffered.
func (r *Reader) Ready() bool {
	buf, _ := r.br.Peek(r.br.Buffered())
	return commandBuffered(buf)
}

// commandBuffered reports whether buf starts with a complete command, or
// with input that parsing rejects before reading past buf.
func commandBuffered(buf []byte) bool {
	if len(buf) == 0 {
		return false
	}
	if buf[0] != '*' {
		return bytes.IndexByte(buf, '\n') >= 0
	}
	n, rest, ok := bufferedHeader(buf)
	if !ok {
		return rest != nil // malformed: an error, found without reading
	}
	for i := int64(0); i < n; i++ {
		blen, after, ok := bufferedHeader(rest)
		if !ok {
			return after != nil
		}
		if rest[0] != '$' || blen < 0 {
			return true
		}
		if int64(len(after)) < blen+2 {
			return false
		}
		rest = after[blen+2:]
	}
	return true
}

// bufferedHeader parses a "*N" or "$N" line at the start of buf. ok is false
// when the line is incomplete (rest nil) or malformed (rest non-nil).
func bufferedHeader(buf []byte) (n int64, rest []byte, ok bool) {
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		return 0, nil, false // the reader waits for the newline
	}
	if i < 2 || buf[i-1] != '\r' || i+1 > maxHeaderLine {
		return 0, buf, false
	}
	n, ok = ParseInt(buf[1 : i-1])
	if !ok {
		return 0, buf, false
	}
	return n, buf[i+1:], true
}

// ReadCommand parses one command, appending its arguments to dst[:0]. An
// empty command (an empty inline line, "*0" or "*-1") returns a nil slice
// and no error. Errors are I/O errors (io.EOF at a clean end between
// commands, io.ErrUnexpectedEOF inside one) or a *ProtocolError.
func (r *Reader) ReadCommand(dst [][]byte) ([][]byte, error) {
	dst = dst[:0]
	b, err := r.br.Peek(1)
	if err != nil {
		return nil, err
	}
	if b[0] != '*' {
		return r.readInline(dst)
	}
	line, err := r.headerLine("too big mbulk count string")
	if err != nil {
		return nil, err
	}
	n, ok := ParseInt(line[1:])
	if !ok {
		return nil, protoErr("invalid multibulk length")
	}
	if n <= 0 {
		return nil, nil
	}
	if n > int64(r.lim.MaxArgs) {
		return nil, &ProtocolError{Msg: "invalid multibulk length", Limit: LimitArgs, Max: int64(r.lim.MaxArgs)}
	}
	var total int64
	for i := int64(0); i < n; i++ {
		line, err := r.headerLine("too big bulk count string")
		if err != nil {
			return nil, err
		}
		if len(line) == 0 || line[0] != '$' {
			got := byte('\r')
			if len(line) > 0 {
				got = line[0]
			}
			return nil, protoErr("expected '$', got '" + printable(got) + "'")
		}
		blen, ok := ParseInt(line[1:])
		if !ok || blen < 0 {
			return nil, protoErr("invalid bulk length")
		}
		if blen > r.lim.MaxBulk {
			return nil, &ProtocolError{Msg: "invalid bulk length", Limit: LimitBulk, Max: r.lim.MaxBulk}
		}
		total += blen
		if r.lim.MaxQuery > 0 && total > r.lim.MaxQuery {
			return nil, &ProtocolError{Msg: "query buffer limit reached", Limit: LimitQuery, Max: r.lim.MaxQuery}
		}
		arg, err := r.readBulk(int(blen))
		if err != nil {
			return nil, err
		}
		dst = append(dst, arg)
	}
	return dst, nil
}

// headerLine returns a "*N" or "$N" line without its CRLF. The slice is
// valid until the next read.
func (r *Reader) headerLine(tooBig string) ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, protoErr(tooBig)
		}
		return nil, eofIsUnexpected(err)
	}
	if len(line) > maxHeaderLine {
		return nil, protoErr(tooBig)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, protoErr("expected CRLF at the end of a header line")
	}
	return line[:len(line)-2], nil
}

// readBulk reads n bytes and the CRLF after them.
func (r *Reader) readBulk(n int) ([]byte, error) {
	var arg []byte
	if n <= ArenaArgMax {
		start := len(r.arena)
		r.arena = slices.Grow(r.arena, n)[:start+n]
		arg = r.arena[start : start+n : start+n]
		if _, err := io.ReadFull(r.br, arg); err != nil {
			return nil, eofIsUnexpected(err)
		}
	} else {
		arg = make([]byte, 0, min(n, bigBulkChunk))
		for len(arg) < n {
			chunk := min(n-len(arg), max(len(arg), bigBulkChunk))
			arg = slices.Grow(arg, chunk)
			if _, err := io.ReadFull(r.br, arg[len(arg):len(arg)+chunk]); err != nil {
				return nil, eofIsUnexpected(err)
			}
			arg = arg[:len(arg)+chunk]
		}
	}
	c1, err := r.br.ReadByte()
	if err != nil {
		return nil, eofIsUnexpected(err)
	}
	c2, err := r.br.ReadByte()
	if err != nil {
		return nil, eofIsUnexpected(err)
	}
	if c1 != '\r' || c2 != '\n' {
		return nil, protoErr("expected CRLF after a bulk string")
	}
	return arg, nil
}

// readInline parses a line of words (see splitInline).
func (r *Reader) readInline(dst [][]byte) ([][]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.line = append(r.line[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(r.line) >= MaxInline {
				return nil, protoErr("too big inline request")
			}
			line, err = r.br.ReadSlice('\n')
			r.line = append(r.line, line...)
		}
		line = r.line
	}
	if err != nil {
		return nil, eofIsUnexpected(err)
	}
	if len(line) > MaxInline {
		return nil, protoErr("too big inline request")
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	// Copy the words into the arena: line aliases the bufio buffer.
	start := len(r.arena)
	dst, r.arena, err = splitInline(dst, r.arena, line, r.lim.MaxArgs)
	if err != nil {
		r.arena = r.arena[:start]
		return nil, err
	}
	if len(dst) == 0 {
		return nil, nil
	}
	return dst, nil
}

func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(rune(c))
	}
	return "\\x" + strconv.FormatUint(uint64(c), 16)
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
