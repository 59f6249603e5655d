package main

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strconv"
)

// RESP2 framing. The reader is strict: a multibulk header line, every bulk
// header and every bulk payload must end with CRLF. Inline commands (a line
// of space-separated words, as telnet and some redis-cli paths send) are
// accepted too.

const (
	// maxInline bounds an inline command line (Redis: 64 KiB).
	maxInline = 64 << 10
	// maxHeaderLine bounds a "*N" or "$N" line: a 64-bit number and CRLF fit
	// in far less.
	maxHeaderLine = 32
	// arenaArgMax: bulks up to this size are copied into the connection's
	// batch arena; larger ones get their own allocation.
	arenaArgMax = 16 << 10
	// bigBulkChunk is how much of a large bulk is allocated ahead of the data
	// arriving, so that a client announcing a huge bulk and sending nothing
	// does not pin that much memory.
	bigBulkChunk = 1 << 20
)

// protocolError is a malformed frame: the server answers
// "ERR Protocol error: <msg>" and closes the connection.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "Protocol error: " + e.msg }

func protoErr(msg string) error { return &protocolError{msg: msg} }

// respReader parses commands from a buffered connection.
type respReader struct {
	br      *bufio.Reader
	maxBulk int64
	maxArgs int
	// arena holds the bytes of small arguments of the current batch. It is
	// reset by resetArena once the batch's commands have run; arguments that
	// must outlive the batch (queued MULTI commands, watched keys) are copied.
	arena []byte
	// line accumulates an inline line longer than the bufio buffer.
	line []byte
}

func newRESPReader(r io.Reader, bufSize int, maxBulk int64, maxArgs int) *respReader {
	return &respReader{br: bufio.NewReaderSize(r, bufSize), maxBulk: maxBulk, maxArgs: maxArgs}
}

// resetArena makes the arena's memory reusable. Arguments returned before
// must not be used afterwards.
func (r *respReader) resetArena() {
	if cap(r.arena) > 4<<20 {
		r.arena = nil // do not keep a big arena for an idle connection
	}
	r.arena = r.arena[:0]
}

// buffered reports how many bytes are already read from the connection and
// not yet parsed.
func (r *respReader) buffered() int { return r.br.Buffered() }

// readCommand parses one command, appending its arguments to dst[:0]. An
// empty command (an empty inline line, "*0" or "*-1") returns a nil slice
// and no error. Errors are I/O errors (io.EOF at a clean end) or a
// *protocolError.
func (r *respReader) readCommand(dst [][]byte) ([][]byte, error) {
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
	n, ok := parseInt(line[1:])
	if !ok {
		return nil, protoErr("invalid multibulk length")
	}
	if n <= 0 {
		return nil, nil
	}
	if n > int64(r.maxArgs) {
		return nil, protoErr("invalid multibulk length (more than the " + strconv.Itoa(r.maxArgs) + " arguments --max-args allows)")
	}
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
		blen, ok := parseInt(line[1:])
		if !ok || blen < 0 {
			return nil, protoErr("invalid bulk length")
		}
		if blen > r.maxBulk {
			return nil, protoErr("invalid bulk length (more than the " + strconv.FormatInt(r.maxBulk, 10) + " bytes --max-bulk-len allows)")
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
func (r *respReader) headerLine(tooBig string) ([]byte, error) {
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
func (r *respReader) readBulk(n int) ([]byte, error) {
	var arg []byte
	if n <= arenaArgMax {
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

// readInline parses a line of words. Words may be quoted as in redis-cli:
// "..." with backslash escapes (\n \r \t \b \a \\ \" \xHH), or '...' with \'.
func (r *respReader) readInline(dst [][]byte) ([][]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.line = append(r.line[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(r.line) >= maxInline {
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
	if len(line) > maxInline {
		return nil, protoErr("too big inline request")
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	// Copy the words into the arena: line aliases the bufio buffer.
	start := len(r.arena)
	dst, r.arena, err = splitInline(dst, r.arena, line, r.maxArgs)
	if err != nil {
		r.arena = r.arena[:start]
		return nil, err
	}
	if len(dst) == 0 {
		return nil, nil
	}
	return dst, nil
}

// splitInline splits line into words appended to dst, their bytes appended
// to arena.
func splitInline(dst [][]byte, arena, line []byte, maxArgs int) ([][]byte, []byte, error) {
	// Words are appended to the arena, which may be reallocated while
	// splitting: record offsets first, slice at the end.
	type span struct{ lo, hi int }
	var spansBuf [16]span
	spans := spansBuf[:0]
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			break
		}
		if len(spans) >= maxArgs {
			return dst, arena, protoErr("invalid multibulk length (more than the " + strconv.Itoa(maxArgs) + " arguments --max-args allows)")
		}
		lo := len(arena)
		switch line[i] {
		case '"':
			i++
			closed := false
			for i < len(line) {
				c := line[i]
				if c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]) {
					arena = append(arena, unhex(line[i+2])<<4|unhex(line[i+3]))
					i += 4
					continue
				}
				if c == '\\' && i+1 < len(line) {
					switch e := line[i+1]; e {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					default:
						c = e
					}
					arena = append(arena, c)
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				arena = append(arena, c)
				i++
			}
			// The closing quote must be followed by a space or the end.
			if !closed || (i < len(line) && !isSpace(line[i])) {
				return dst, arena, protoErr("unbalanced quotes in request")
			}
		case '\'':
			i++
			closed := false
			for i < len(line) {
				c := line[i]
				if c == '\\' && i+1 < len(line) && line[i+1] == '\'' {
					arena = append(arena, '\'')
					i += 2
					continue
				}
				if c == '\'' {
					closed = true
					i++
					break
				}
				arena = append(arena, c)
				i++
			}
			if !closed || (i < len(line) && !isSpace(line[i])) {
				return dst, arena, protoErr("unbalanced quotes in request")
			}
		default:
			for i < len(line) && !isSpace(line[i]) {
				arena = append(arena, line[i])
				i++
			}
		}
		spans = append(spans, span{lo, len(arena)})
	}
	for _, s := range spans {
		dst = append(dst, arena[s.lo:s.hi:s.hi])
	}
	return dst, arena, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
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

// parseInt parses a decimal int64 strictly, as Redis's string2ll does: an
// optional '-', digits, no leading zeros (except "0" itself), no spaces, no
// '+', no overflow.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}

// respWriter appends replies to a byte slice, which the connection writes
// out once per batch.
type respWriter struct {
	b []byte
}

func (w *respWriter) simple(s string) {
	w.b = append(w.b, '+')
	w.b = append(w.b, s...)
	w.b = append(w.b, '\r', '\n')
}

// err writes an error reply; msg starts with the error code ("ERR ...").
// CR and LF inside msg become spaces, as in Redis.
func (w *respWriter) err(msg string) {
	w.b = append(w.b, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		w.b = append(w.b, c)
	}
	w.b = append(w.b, '\r', '\n')
}

func (w *respWriter) int(n int64) {
	w.b = append(w.b, ':')
	w.b = strconv.AppendInt(w.b, n, 10)
	w.b = append(w.b, '\r', '\n')
}

func (w *respWriter) bulk(v []byte) {
	w.b = append(w.b, '$')
	w.b = strconv.AppendInt(w.b, int64(len(v)), 10)
	w.b = append(w.b, '\r', '\n')
	w.b = append(w.b, v...)
	w.b = append(w.b, '\r', '\n')
}

func (w *respWriter) bulkString(s string) {
	w.b = append(w.b, '$')
	w.b = strconv.AppendInt(w.b, int64(len(s)), 10)
	w.b = append(w.b, '\r', '\n')
	w.b = append(w.b, s...)
	w.b = append(w.b, '\r', '\n')
}

func (w *respWriter) null() { w.b = append(w.b, "$-1\r\n"...) }

func (w *respWriter) nullArray() { w.b = append(w.b, "*-1\r\n"...) }

func (w *respWriter) arrayLen(n int) {
	w.b = append(w.b, '*')
	w.b = strconv.AppendInt(w.b, int64(n), 10)
	w.b = append(w.b, '\r', '\n')
}

func (w *respWriter) ok() { w.b = append(w.b, "+OK\r\n"...) }
