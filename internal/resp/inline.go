package resp

// Inline commands are split by a small state machine over the line's bytes.
// Words may be quoted as in redis-cli: "..." with backslash escapes
// (\n \r \t \b \a \xHH, and \ before any other byte stands for that byte),
// or '...' where only \' is an escape. A closing quote must be followed by
// a space or the end of the line.

type inlineState uint8

const (
	betweenWords inlineState = iota
	inWord                   // an unquoted word
	inDouble                 // inside "..."
	inSingle                 // inside '...'
	afterQuote               // just after a closing quote
)

// inlineSplitter is the state of one splitInline call.
type inlineSplitter struct {
	line  []byte
	arena []byte
	st    inlineState
	lo    int // arena offset where the current word starts
	// Words are appended to the arena, which may be reallocated while
	// splitting: record offsets, slice at the end.
	spans    []span
	spansBuf [16]span
}

type span struct{ lo, hi int }

var errUnbalanced = protoErr("unbalanced quotes in request")

// splitInline splits line into words appended to dst, their bytes appended
// to arena (the returned arena may be a new slice).
func splitInline(dst [][]byte, arena, line []byte, maxArgs int) ([][]byte, []byte, error) {
	s := inlineSplitter{line: line, arena: arena}
	s.spans = s.spansBuf[:0]
	for i := 0; i < len(line); i++ {
		if s.st == betweenWords && !isSpace(line[i]) && len(s.spans) >= maxArgs {
			return dst, s.arena, &ProtocolError{Msg: "invalid multibulk length", Limit: LimitArgs, Max: int64(maxArgs)}
		}
		var err error
		if i, err = s.step(i); err != nil {
			return dst, s.arena, err
		}
	}
	switch s.st {
	case inWord:
		s.endWord()
	case inDouble, inSingle:
		return dst, s.arena, errUnbalanced
	}
	for _, sp := range s.spans {
		dst = append(dst, s.arena[sp.lo:sp.hi:sp.hi])
	}
	return dst, s.arena, nil
}

// step consumes the byte at i (and any escape it starts) and returns the
// index of the last byte consumed.
func (s *inlineSplitter) step(i int) (int, error) {
	c := s.line[i]
	switch s.st {
	case betweenWords:
		if isSpace(c) {
			return i, nil
		}
		s.lo = len(s.arena)
		switch c {
		case '"':
			s.st = inDouble
		case '\'':
			s.st = inSingle
		default:
			s.arena = append(s.arena, c)
			s.st = inWord
		}
	case inWord:
		if isSpace(c) {
			s.endWord()
			return i, nil
		}
		s.arena = append(s.arena, c)
	case inDouble:
		return s.double(i), nil
	case inSingle:
		switch {
		case c == '\\' && i+1 < len(s.line) && s.line[i+1] == '\'':
			s.arena = append(s.arena, '\'')
			return i + 1, nil
		case c == '\'':
			s.endWord()
			s.st = afterQuote
		default:
			s.arena = append(s.arena, c)
		}
	case afterQuote:
		if !isSpace(c) {
			return i, errUnbalanced
		}
		s.st = betweenWords
	}
	return i, nil
}

// double consumes a byte inside "...".
func (s *inlineSplitter) double(i int) int {
	line, c := s.line, s.line[i]
	switch {
	case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
		s.arena = append(s.arena, unhex(line[i+2])<<4|unhex(line[i+3]))
		return i + 3
	case c == '\\' && i+1 < len(line):
		s.arena = append(s.arena, unescape(line[i+1]))
		return i + 1
	case c == '"':
		s.endWord()
		s.st = afterQuote
	default:
		s.arena = append(s.arena, c)
	}
	return i
}

func (s *inlineSplitter) endWord() {
	s.spans = append(s.spans, span{s.lo, len(s.arena)})
	s.st = betweenWords
}

func unescape(e byte) byte {
	switch e {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return e
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
