package resp

import "strconv"

// Writer appends RESP2 replies to B, which the caller writes out and resets
// (it may also truncate B to drop replies it appended).
type Writer struct {
	B []byte
}

// Simple writes a status reply: +s.
func (w *Writer) Simple(s string) {
	w.B = append(w.B, '+')
	w.B = append(w.B, s...)
	w.B = append(w.B, '\r', '\n')
}

// Err writes an error reply; msg starts with the error code ("ERR ...").
// CR and LF inside msg become spaces, as in Redis.
func (w *Writer) Err(msg string) {
	w.B = append(w.B, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		w.B = append(w.B, c)
	}
	w.B = append(w.B, '\r', '\n')
}

// Int writes an integer reply.
func (w *Writer) Int(n int64) {
	w.B = append(w.B, ':')
	w.B = strconv.AppendInt(w.B, n, 10)
	w.B = append(w.B, '\r', '\n')
}

// Bulk writes a bulk string (an empty one for nil).
func (w *Writer) Bulk(v []byte) {
	w.B = append(w.B, '$')
	w.B = strconv.AppendInt(w.B, int64(len(v)), 10)
	w.B = append(w.B, '\r', '\n')
	w.B = append(w.B, v...)
	w.B = append(w.B, '\r', '\n')
}

// BulkString writes s as a bulk string.
func (w *Writer) BulkString(s string) {
	w.B = append(w.B, '$')
	w.B = strconv.AppendInt(w.B, int64(len(s)), 10)
	w.B = append(w.B, '\r', '\n')
	w.B = append(w.B, s...)
	w.B = append(w.B, '\r', '\n')
}

// Null writes the null bulk string.
func (w *Writer) Null() { w.B = append(w.B, "$-1\r\n"...) }

// NullArray writes the null array.
func (w *Writer) NullArray() { w.B = append(w.B, "*-1\r\n"...) }

// ArrayLen starts an array of n elements.
func (w *Writer) ArrayLen(n int) {
	w.B = append(w.B, '*')
	w.B = strconv.AppendInt(w.B, int64(n), 10)
	w.B = append(w.B, '\r', '\n')
}

// OK writes +OK.
func (w *Writer) OK() { w.B = append(w.B, "+OK\r\n"...) }
