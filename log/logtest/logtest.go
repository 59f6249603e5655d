// Package logtest is the conformance suite for log.Log backends.
//
// Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		logtest.Run(t, func(t *testing.T) log.Log { return mybackend.New() })
//	}
//
// Run checks every rule of the contract in the package doc of log, each as a
// subtest named after the rule, on a fresh log from open:
//
//   - EmptyLog, DensePositions: positions are dense from 0, the first Append
//     returns 0, Tail is the next position to be assigned.
//   - ReadAtAndBeyondTail: ErrNotWritten at the tail, just past it and far
//     beyond it (up to the largest position).
//   - ReadReturnsCopy, AppendCopiesData: the caller owns what Read returns,
//     and the log does not keep the slice passed to Append.
//   - ZeroLengthEntries: valid data, read back as zero-length, not junk.
//   - MaxEntrySize, TooLarge: log.MaxEntrySize bytes round-trip; one more is
//     refused with ErrTooLarge and takes no position.
//   - WriteOnce: Fill where data is returns ErrWritten and changes nothing.
//   - FillAtTail, FillBeyondTail: junk forever, idempotent, a later Append
//     skips the position and takes the next one.
//   - Holes (with the Holes option): a hole reads ErrNotWritten, fills to junk,
//     trims to trimmed.
//   - Trim, TrimBeyondTail: below the trim point reads ErrTrimmed, Fill there is
//     an idempotent no-op, a lower trim is a no-op; trimmed positions are
//     never assigned.
//   - CancelledContext: every call with a cancelled or expired context returns
//     an error wrapping the context's error.
//   - Closed: after Close every call returns ErrClosed, and so does a second
//     Close (the contract says every call; Close is a call).
//   - ErrorsNamePosition: errors wrap the sentinel and their text contains the
//     position in decimal.
//   - ConcurrentAppends: 32 goroutines appending at once, with readers racing
//     them; positions unique and dense, each holding its own data.
//   - AppendFillRace: a writer and a filler race for the tail position hundreds
//     of times; exactly one wins every time.
//   - ReadRange (for a log.RangeReader): every range is the same slice of
//     the entry Read returns, with the entry's length; errors as Read's.
//   - Persistence (with the Persistent option): data, zero-length entries,
//     junk, fills beyond the tail, trims, holes and the tail survive Close and
//     reopen, twice, and appends carry on where they stopped.
//
// Run closes every log it opens (and every reopened one); open may register
// its own cleanup as well, for instance to remove files: a second Close is
// expected to return ErrClosed, which such a cleanup should ignore. The suite
// takes well under a second on an in-memory backend.
package logtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// Option configures Run.
type Option func(*config)

type config struct {
	reopen     func(t *testing.T, closed log.Log) log.Log
	hole       func(t *testing.T, l log.Log) log.Position
	raceRounds int
}

// Persistent declares a durable backend: reopen must open the same storage as
// closed, which Run has just closed, and return it open. Run then checks that
// everything survives close and reopen.
func Persistent(reopen func(t *testing.T, closed log.Log) log.Log) Option {
	return func(c *config) { c.reopen = reopen }
}

// Holes declares a backend that can leave holes: makeHole must make l take a
// position below its tail and leave it unwritten, as a writer that died after
// sequencing does, and return it. With it, Run checks the rules about holes;
// without it, those checks are skipped.
func Holes(makeHole func(t *testing.T, l log.Log) log.Position) Option {
	return func(c *config) { c.hole = makeHole }
}

// RaceRounds sets how many times AppendFillRace races a writer against a
// filler (default 300).
func RaceRounds(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.raceRounds = n
		}
	}
}

type suite struct {
	cfg  config
	open func(t *testing.T) log.Log
}

// Run runs the conformance suite as subtests of t. open must return a new,
// empty, open log each time it is called.
func Run(t *testing.T, open func(t *testing.T) log.Log, opts ...Option) {
	t.Helper()
	s := &suite{open: open, cfg: config{raceRounds: 300}}
	for _, o := range opts {
		o(&s.cfg)
	}
	tests := []struct {
		name string
		f    func(t *testing.T)
	}{
		{"EmptyLog", s.testEmptyLog},
		{"DensePositions", s.testDensePositions},
		{"ReadAtAndBeyondTail", s.testReadAtAndBeyondTail},
		{"ReadReturnsCopy", s.testReadReturnsCopy},
		{"AppendCopiesData", s.testAppendCopiesData},
		{"ZeroLengthEntries", s.testZeroLength},
		{"MaxEntrySize", s.testMaxEntrySize},
		{"TooLarge", s.testTooLarge},
		{"WriteOnce", s.testWriteOnce},
		{"FillAtTail", s.testFillAtTail},
		{"FillBeyondTail", s.testFillBeyondTail},
		{"Holes", s.testHoles},
		{"Trim", s.testTrim},
		{"TrimBeyondTail", s.testTrimBeyondTail},
		{"CancelledContext", s.testCancelledContext},
		{"Closed", s.testClosed},
		{"ErrorsNamePosition", s.testErrorsNamePosition},
		{"ConcurrentAppends", s.testConcurrentAppends},
		{"AppendFillRace", s.testAppendFillRace},
		{"Persistence", s.testPersistence},
		{"AppendBatch", s.testAppendBatch},
		{"ReadRange", s.testReadRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.f)
	}
}

// newLog opens a fresh log that is closed when the test ends.
func (s *suite) newLog(t *testing.T) log.Log {
	t.Helper()
	l := s.open(t)
	if l == nil {
		t.Fatal("open returned a nil log")
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func (s *suite) makeHole(t *testing.T, l log.Log) log.Position {
	t.Helper()
	before := tail(t, l)
	h := s.cfg.hole(t, l)
	after := tail(t, l)
	if h < before || h >= after {
		t.Fatalf("Holes option: hole at %d is not a position taken by it (tail %d before, %d after)", h, before, after)
	}
	return h
}

// ---- helpers ----

func entry(format string, args ...any) []byte {
	return []byte(fmt.Sprintf(format, args...))
}

func appendOK(t *testing.T, l log.Log, data []byte) log.Position {
	t.Helper()
	p, err := l.Append(t.Context(), data)
	if err != nil {
		t.Fatalf("Append(%d bytes): %v", len(data), err)
	}
	return p
}

func appendAt(t *testing.T, l log.Log, want log.Position, data []byte) {
	t.Helper()
	if p := appendOK(t, l, data); p != want {
		t.Fatalf("Append returned position %d, want %d", p, want)
	}
}

func tail(t *testing.T, l log.Log) log.Position {
	t.Helper()
	p, err := l.Tail(t.Context())
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	return p
}

func wantTail(t *testing.T, l log.Log, want log.Position) {
	t.Helper()
	if got := tail(t, l); got != want {
		t.Fatalf("Tail = %d, want %d", got, want)
	}
}

func readData(t *testing.T, l log.Log, p log.Position, want []byte) {
	t.Helper()
	got, err := l.Read(t.Context(), p)
	if err != nil {
		t.Fatalf("Read(%d): %v, want data %q", p, err, short(want))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Read(%d) = %q (%d bytes), want %q (%d bytes)", p, short(got), len(got), short(want), len(want))
	}
}

func readErr(t *testing.T, l log.Log, p log.Position, want error) {
	t.Helper()
	got, err := l.Read(t.Context(), p)
	if err == nil {
		t.Fatalf("Read(%d) = %q, want an error wrapping %v", p, short(got), want)
	}
	wantErr(t, fmt.Sprintf("Read(%d)", p), err, want, p)
}

func fillOK(t *testing.T, l log.Log, p log.Position) {
	t.Helper()
	if err := l.Fill(t.Context(), p); err != nil {
		t.Fatalf("Fill(%d): %v, want nil", p, err)
	}
}

func trimOK(t *testing.T, l log.Log, p log.Position) {
	t.Helper()
	if err := l.Trim(t.Context(), p); err != nil {
		t.Fatalf("Trim(%d): %v, want nil", p, err)
	}
}

// wantErr checks that err wraps want and names pos in decimal.
func wantErr(t *testing.T, call string, err, want error, pos log.Position) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %q does not wrap %v", call, err, want)
	}
	if !namesPosition(err, pos) {
		t.Fatalf("%s: error %q does not name position %d", call, err, pos)
	}
}

func namesPosition(err error, pos log.Position) bool {
	re := regexp.MustCompile(`(^|[^0-9])` + strconv.FormatUint(uint64(pos), 10) + `([^0-9]|$)`)
	return re.MatchString(err.Error())
}

func short(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// ---- positions and tail ----

func (s *suite) testEmptyLog(t *testing.T) {
	l := s.newLog(t)
	wantTail(t, l, 0)
	readErr(t, l, 0, log.ErrNotWritten)
	appendAt(t, l, 0, entry("first"))
	wantTail(t, l, 1)
	readData(t, l, 0, entry("first"))
}

func (s *suite) testDensePositions(t *testing.T) {
	l := s.newLog(t)
	for i := range log.Position(20) {
		appendAt(t, l, i, entry("dense-%d", i))
		wantTail(t, l, i+1)
	}
	for i := range log.Position(20) {
		readData(t, l, i, entry("dense-%d", i))
	}
}

func (s *suite) testReadAtAndBeyondTail(t *testing.T) {
	l := s.newLog(t)
	for i := range log.Position(3) {
		appendAt(t, l, i, entry("e%d", i))
	}
	for _, p := range []log.Position{3, 4, 1000, 1 << 40, 1 << 62, math.MaxUint64} {
		readErr(t, l, p, log.ErrNotWritten)
	}
	wantTail(t, l, 3)
	appendAt(t, l, 3, entry("e3"))
}

// ---- ownership of buffers ----

func (s *suite) testReadReturnsCopy(t *testing.T) {
	l := s.newLog(t)
	p := appendOK(t, l, entry("original"))
	got, err := l.Read(t.Context(), p)
	if err != nil {
		t.Fatalf("Read(%d): %v", p, err)
	}
	for i := range got {
		got[i] = 'X'
	}
	readData(t, l, p, entry("original"))
	// A second read must not share memory with the first either.
	a, _ := l.Read(t.Context(), p)
	b, _ := l.Read(t.Context(), p)
	if len(a) > 0 && len(b) > 0 {
		a[0] = 'Y'
		if b[0] == 'Y' {
			t.Fatalf("two Reads of position %d return the same memory", p)
		}
	}
}

func (s *suite) testAppendCopiesData(t *testing.T) {
	l := s.newLog(t)
	buf := entry("kept-as-appended")
	p := appendOK(t, l, buf)
	for i := range buf {
		buf[i] = 'Z'
	}
	readData(t, l, p, entry("kept-as-appended"))
	// Reusing one buffer for several appends is the common case.
	buf = buf[:0]
	var ps []log.Position
	for i := range 5 {
		buf = append(buf[:0], entry("reused-%d", i)...)
		ps = append(ps, appendOK(t, l, buf))
	}
	for i, p := range ps {
		readData(t, l, p, entry("reused-%d", i))
	}
}

// ---- entry sizes ----

func (s *suite) testZeroLength(t *testing.T) {
	l := s.newLog(t)
	for i, data := range [][]byte{nil, {}} {
		p := appendOK(t, l, data)
		got, err := l.Read(t.Context(), p)
		if err != nil {
			t.Fatalf("Read(%d) of zero-length entry %d: %v, want zero-length data", p, i, err)
		}
		if len(got) != 0 {
			t.Fatalf("Read(%d) of zero-length entry = %q, want zero-length", p, short(got))
		}
		err = l.Fill(t.Context(), p)
		if err == nil {
			t.Fatalf("Fill(%d) of zero-length entry succeeded: a zero-length entry is data, not junk", p)
		}
		wantErr(t, fmt.Sprintf("Fill(%d)", p), err, log.ErrWritten, p)
	}
	appendAt(t, l, 2, entry("after"))
}

var (
	bigOnce sync.Once
	big     []byte
)

// bigEntry returns a shared pattern of log.MaxEntrySize+1 bytes; callers
// slice it and never modify it.
func bigEntry() []byte {
	bigOnce.Do(func() {
		// A 251-byte pattern (prime, so it never lines up with page or
		// block sizes) repeated by doubling copies.
		big = make([]byte, log.MaxEntrySize+1)
		for i := range 251 {
			big[i] = byte(i*7 + 3)
		}
		for n := 251; n < len(big); n *= 2 {
			copy(big[n:], big[:n])
		}
	})
	return big
}

func (s *suite) testMaxEntrySize(t *testing.T) {
	l := s.newLog(t)
	appendAt(t, l, 0, entry("small"))
	data := bigEntry()[:log.MaxEntrySize]
	appendAt(t, l, 1, data)
	readData(t, l, 1, data)
	appendAt(t, l, 2, entry("small"))
}

func (s *suite) testTooLarge(t *testing.T) {
	l := s.newLog(t)
	appendAt(t, l, 0, entry("small"))
	_, err := l.Append(t.Context(), bigEntry())
	if !errors.Is(err, log.ErrTooLarge) {
		t.Fatalf("Append(%d bytes) = %v, want an error wrapping ErrTooLarge", log.MaxEntrySize+1, err)
	}
	wantTail(t, l, 1)
	readErr(t, l, 1, log.ErrNotWritten)
	appendAt(t, l, 1, entry("small"))
}

// ---- write-once and fill ----

func (s *suite) testWriteOnce(t *testing.T) {
	l := s.newLog(t)
	appendAt(t, l, 0, entry("a"))
	appendAt(t, l, 1, entry("b"))
	for range 2 {
		for _, p := range []log.Position{0, 1} {
			err := l.Fill(t.Context(), p)
			if err == nil {
				t.Fatalf("Fill(%d) on data returned nil, want ErrWritten", p)
			}
			wantErr(t, fmt.Sprintf("Fill(%d)", p), err, log.ErrWritten, p)
		}
	}
	readData(t, l, 0, entry("a"))
	readData(t, l, 1, entry("b"))
	appendAt(t, l, 2, entry("c"))
	readData(t, l, 0, entry("a"))
	wantTail(t, l, 3)
}

func (s *suite) testFillAtTail(t *testing.T) {
	l := s.newLog(t)
	for i := range log.Position(3) {
		appendAt(t, l, i, entry("e%d", i))
	}
	fillOK(t, l, 3)
	readErr(t, l, 3, log.ErrFilled)
	fillOK(t, l, 3) // idempotent on junk
	readErr(t, l, 3, log.ErrFilled)
	appendAt(t, l, 4, entry("after"))
	readErr(t, l, 3, log.ErrFilled)
	fillOK(t, l, 3)
	readData(t, l, 4, entry("after"))
	wantTail(t, l, 5)
	// Junk never becomes data.
	for i := range log.Position(3) {
		appendAt(t, l, 5+i, entry("more-%d", i))
	}
	readErr(t, l, 3, log.ErrFilled)
}

func (s *suite) testFillBeyondTail(t *testing.T) {
	l := s.newLog(t)
	const far = log.Position(1 << 40)
	fillOK(t, l, 2)
	fillOK(t, l, far)
	fillOK(t, l, far) // idempotent
	readErr(t, l, 2, log.ErrFilled)
	readErr(t, l, far, log.ErrFilled)
	readErr(t, l, far-1, log.ErrNotWritten)
	readErr(t, l, far+1, log.ErrNotWritten)
	readErr(t, l, 0, log.ErrNotWritten)
	appendAt(t, l, 0, entry("a"))
	appendAt(t, l, 1, entry("b"))
	appendAt(t, l, 3, entry("c")) // 2 is junk: skipped
	readErr(t, l, 2, log.ErrFilled)
	readData(t, l, 3, entry("c"))
	wantTail(t, l, 4)
	readErr(t, l, far, log.ErrFilled)
}

func (s *suite) testHoles(t *testing.T) {
	if s.cfg.hole == nil {
		t.Skip("backend does not declare holes (logtest.Holes)")
	}
	l := s.newLog(t)
	appendAt(t, l, 0, entry("a"))
	h := s.makeHole(t, l)
	readErr(t, l, h, log.ErrNotWritten)
	p := appendOK(t, l, entry("b"))
	if p <= h {
		t.Fatalf("Append after hole %d returned %d", h, p)
	}
	readData(t, l, p, entry("b"))
	readErr(t, l, h, log.ErrNotWritten)
	fillOK(t, l, h)
	readErr(t, l, h, log.ErrFilled)
	fillOK(t, l, h)
	readErr(t, l, h, log.ErrFilled)
	readData(t, l, p, entry("b"))

	h2 := s.makeHole(t, l)
	readErr(t, l, h2, log.ErrNotWritten)
	trimOK(t, l, h2+1)
	readErr(t, l, h2, log.ErrTrimmed)
	fillOK(t, l, h2)
	readErr(t, l, h2, log.ErrTrimmed)
	p = appendOK(t, l, entry("c"))
	if p <= h2 {
		t.Fatalf("Append after trimmed hole %d returned %d", h2, p)
	}
	readData(t, l, p, entry("c"))
}

// ---- trim ----

func (s *suite) testTrim(t *testing.T) {
	l := s.newLog(t)
	for i := range log.Position(10) {
		appendAt(t, l, i, entry("t%d", i))
	}
	trimOK(t, l, 0) // nothing below 0
	readData(t, l, 0, entry("t0"))

	trimOK(t, l, 5)
	for i := range log.Position(5) {
		readErr(t, l, i, log.ErrTrimmed)
	}
	for i := log.Position(5); i < 10; i++ {
		readData(t, l, i, entry("t%d", i))
	}
	fillOK(t, l, 3) // idempotent on trimmed positions
	readErr(t, l, 3, log.ErrTrimmed)

	trimOK(t, l, 2) // lower trim: no-op
	readErr(t, l, 4, log.ErrTrimmed)
	readData(t, l, 5, entry("t5"))
	trimOK(t, l, 5) // same trim again
	readData(t, l, 5, entry("t5"))

	wantTail(t, l, 10)
	appendAt(t, l, 10, entry("t10"))

	trimOK(t, l, 11) // everything
	readErr(t, l, 10, log.ErrTrimmed)
	wantTail(t, l, 11)
	appendAt(t, l, 11, entry("t11"))
	readData(t, l, 11, entry("t11"))
	readErr(t, l, 10, log.ErrTrimmed)
}

func (s *suite) testTrimBeyondTail(t *testing.T) {
	l := s.newLog(t)
	appendAt(t, l, 0, entry("a"))
	appendAt(t, l, 1, entry("b"))
	trimOK(t, l, 5)
	for i := range log.Position(5) {
		readErr(t, l, i, log.ErrTrimmed)
	}
	fillOK(t, l, 3)
	readErr(t, l, 3, log.ErrTrimmed)
	// Positions 2..4 can never be written: the next append takes 5.
	appendAt(t, l, 5, entry("c"))
	readData(t, l, 5, entry("c"))
	wantTail(t, l, 6)
	for i := range log.Position(5) {
		readErr(t, l, i, log.ErrTrimmed)
	}
}

// ---- contexts and close ----

func (s *suite) testCancelledContext(t *testing.T) {
	l := s.newLog(t)
	appendAt(t, l, 0, entry("a"))

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()

	for _, c := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"cancelled", cancelled, context.Canceled},
		{"expired", expired, context.DeadlineExceeded},
	} {
		ctx := c.ctx
		calls := []struct {
			name string
			f    func() error
		}{
			{"Append", func() error { _, err := l.Append(ctx, entry("x")); return err }},
			{"Read(0)", func() error { _, err := l.Read(ctx, 0); return err }},
			{"Read(7)", func() error { _, err := l.Read(ctx, 7); return err }},
			{"Fill(0)", func() error { return l.Fill(ctx, 0) }},
			{"Fill(7)", func() error { return l.Fill(ctx, 7) }},
			{"Trim(0)", func() error { return l.Trim(ctx, 0) }},
			{"Tail", func() error { _, err := l.Tail(ctx); return err }},
		}
		for _, call := range calls {
			if err := call.f(); !errors.Is(err, c.want) {
				t.Errorf("%s with a %s context = %v, want an error wrapping %v", call.name, c.name, err, c.want)
			}
		}
	}
	// The log is unharmed.
	readData(t, l, 0, entry("a"))
	p := appendOK(t, l, entry("b"))
	readData(t, l, p, entry("b"))
}

func (s *suite) testClosed(t *testing.T) {
	l := s.newLog(t)
	appendAt(t, l, 0, entry("a"))
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	ctx := t.Context()
	calls := []struct {
		name string
		f    func() error
	}{
		{"Append", func() error { _, err := l.Append(ctx, entry("x")); return err }},
		{"Read(0)", func() error { _, err := l.Read(ctx, 0); return err }},
		{"Read(1)", func() error { _, err := l.Read(ctx, 1); return err }},
		{"Fill(0)", func() error { return l.Fill(ctx, 0) }},
		{"Fill(5)", func() error { return l.Fill(ctx, 5) }},
		{"Trim(0)", func() error { return l.Trim(ctx, 0) }},
		{"Trim(1)", func() error { return l.Trim(ctx, 1) }},
		{"Tail", func() error { _, err := l.Tail(ctx); return err }},
		{"Close", l.Close},
	}
	for _, call := range calls {
		if err := call.f(); !errors.Is(err, log.ErrClosed) {
			t.Errorf("%s after Close = %v, want an error wrapping ErrClosed", call.name, err)
		}
	}
	// With a cancelled context too, the call must fail (either error will do).
	if _, err := l.Append(cancelled, entry("x")); err == nil {
		t.Errorf("Append with a cancelled context after Close succeeded")
	}
}

// ---- errors ----

func (s *suite) testErrorsNamePosition(t *testing.T) {
	l := s.newLog(t)
	for i := range log.Position(13) {
		appendAt(t, l, i, entry("n%d", i))
	}
	readErr(t, l, 13, log.ErrNotWritten)
	readErr(t, l, 987654321, log.ErrNotWritten)
	err := l.Fill(t.Context(), 11)
	if err == nil {
		t.Fatal("Fill(11) on data returned nil")
	}
	wantErr(t, "Fill(11)", err, log.ErrWritten, 11)
	fillOK(t, l, 14)
	readErr(t, l, 14, log.ErrFilled)
	fillOK(t, l, 123456789)
	readErr(t, l, 123456789, log.ErrFilled)
	trimOK(t, l, 10)
	readErr(t, l, 9, log.ErrTrimmed)
	readErr(t, l, 6, log.ErrTrimmed)
	if s.cfg.hole != nil {
		h := s.makeHole(t, l)
		readErr(t, l, h, log.ErrNotWritten)
	}
}

// ---- concurrency ----

func (s *suite) testConcurrentAppends(t *testing.T) {
	const writers, perWriter = 32, 16
	const total = writers * perWriter
	l := s.newLog(t)
	ctx := t.Context()

	var (
		wg      sync.WaitGroup
		got     [writers][perWriter]log.Position
		stop    = make(chan struct{})
		readers sync.WaitGroup
		seenMu  sync.Mutex
		seen    = map[log.Position][]byte{}
	)
	// Readers race the appenders: anything they read must be what ends up
	// there; the only error allowed is ErrNotWritten.
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			p := log.Position(r)
			for {
				select {
				case <-stop:
					return
				default:
				}
				data, err := l.Read(ctx, p)
				switch {
				case err == nil:
					seenMu.Lock()
					seen[p] = data
					seenMu.Unlock()
				case !errors.Is(err, log.ErrNotWritten):
					t.Errorf("concurrent Read(%d): %v", p, err)
					return
				}
				p = (p + 7) % total
			}
		}()
	}
	start := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range perWriter {
				p, err := l.Append(ctx, entry("w%d-%d", w, i))
				if err != nil {
					t.Errorf("writer %d: Append: %v", w, err)
					return
				}
				if i > 0 && p <= got[w][i-1] {
					t.Errorf("writer %d: Append returned %d after %d: positions go backwards", w, p, got[w][i-1])
				}
				got[w][i] = p
			}
		}()
	}
	close(start)
	wg.Wait()
	close(stop)
	readers.Wait()
	if t.Failed() {
		return
	}

	owner := make(map[log.Position]string, total)
	for w := range writers {
		for i := range perWriter {
			p := got[w][i]
			name := fmt.Sprintf("w%d-%d", w, i)
			if other, dup := owner[p]; dup {
				t.Fatalf("position %d returned to both %s and %s", p, other, name)
			}
			if p >= total {
				t.Fatalf("%s got position %d; %d appends to an empty log must take 0..%d", name, p, total, total-1)
			}
			owner[p] = name
		}
	}
	wantTail(t, l, total)
	for p, name := range owner {
		readData(t, l, p, []byte(name))
		if data, ok := seen[p]; ok && !bytes.Equal(data, []byte(name)) {
			t.Fatalf("concurrent Read(%d) saw %q, but %s was appended there", p, data, name)
		}
	}
}

func (s *suite) testAppendFillRace(t *testing.T) {
	l := s.newLog(t)
	ctx := t.Context()
	var fillWon, appendWon int
	for round := range s.cfg.raceRounds {
		t0 := tail(t, l)
		data := entry("race-%d", round)
		var (
			wg        sync.WaitGroup
			start     = make(chan struct{})
			p         log.Position
			appendErr error
			fillErr   error
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			p, appendErr = l.Append(ctx, data)
		}()
		go func() {
			defer wg.Done()
			<-start
			fillErr = l.Fill(ctx, t0)
		}()
		close(start)
		wg.Wait()

		if appendErr != nil {
			t.Fatalf("round %d: Append: %v", round, appendErr)
		}
		switch {
		case fillErr == nil:
			// The filler won: t0 is junk, the append landed after it.
			fillWon++
			if p == t0 {
				t.Fatalf("round %d: Fill(%d) succeeded but Append also returned %d: both won", round, t0, p)
			}
			readErr(t, l, t0, log.ErrFilled)
			if p < t0 {
				t.Fatalf("round %d: Append returned %d, below the tail %d", round, p, t0)
			}
		case errors.Is(fillErr, log.ErrWritten):
			// The writer won.
			appendWon++
			if p != t0 {
				t.Fatalf("round %d: Fill(%d) = %v but Append returned %d", round, t0, fillErr, p)
			}
		default:
			t.Fatalf("round %d: Fill(%d) = %v, want nil or ErrWritten", round, t0, fillErr)
		}
		readData(t, l, p, data)
	}
	t.Logf("%d rounds: filler won %d, writer won %d", s.cfg.raceRounds, fillWon, appendWon)
}

// ---- persistence ----

// model is what a set of positions must read as.
type model map[log.Position]want

type want struct {
	err  error // nil: data
	data []byte
}

func (m model) check(t *testing.T, l log.Log) {
	t.Helper()
	for p, w := range m {
		if w.err == nil {
			readData(t, l, p, w.data)
		} else {
			readErr(t, l, p, w.err)
		}
	}
}

func (m model) trim(p log.Position) {
	for q := range m {
		if q < p {
			m[q] = want{err: log.ErrTrimmed}
		}
	}
}

func (s *suite) testPersistence(t *testing.T) {
	if s.cfg.reopen == nil {
		t.Skip("backend is not durable (logtest.Persistent)")
	}
	l := s.newLog(t)
	m := model{}
	add := func(data []byte) log.Position {
		t.Helper()
		p := appendOK(t, l, data)
		if _, ok := m[p]; ok {
			t.Fatalf("Append returned position %d, already used", p)
		}
		m[p] = want{data: data}
		return p
	}
	for i := range 5 {
		add(entry("p%d", i))
	}
	add([]byte{}) // zero-length data
	t0 := tail(t, l)
	fillOK(t, l, t0) // junk at the tail
	m[t0] = want{err: log.ErrFilled}
	if p := add(entry("after-junk")); p != t0+1 {
		t.Fatalf("Append after Fill(%d) returned %d, want %d", t0, p, t0+1)
	}
	if s.cfg.hole != nil {
		h := s.makeHole(t, l)
		m[h] = want{err: log.ErrNotWritten}
		h2 := s.makeHole(t, l)
		fillOK(t, l, h2)
		m[h2] = want{err: log.ErrFilled}
	}
	add(entry("last-before-close"))
	t1 := tail(t, l)
	ahead := t1 + 3
	fillOK(t, l, ahead) // junk beyond the tail
	m[ahead] = want{err: log.ErrFilled}
	m[ahead+1] = want{err: log.ErrNotWritten}
	m[t1] = want{err: log.ErrNotWritten}
	trimOK(t, l, 2)
	m.trim(2)
	m.check(t, l)

	for round := range 2 {
		if err := l.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		closed := l
		l = s.cfg.reopen(t, closed)
		if l == nil {
			t.Fatalf("round %d: reopen returned a nil log", round)
		}
		t.Cleanup(func() { _ = l.Close() })
		if _, err := closed.Read(t.Context(), 3); !errors.Is(err, log.ErrClosed) {
			t.Fatalf("round %d: the closed handle reads %v after reopen, want ErrClosed", round, err)
		}
		m.check(t, l)
		wantTail(t, l, t1)
		// Write-once holds across reopen.
		err := l.Fill(t.Context(), t0+1)
		if err == nil {
			t.Fatalf("round %d: Fill(%d) on data after reopen returned nil", round, t0+1)
		}
		wantErr(t, fmt.Sprintf("Fill(%d) after reopen", t0+1), err, log.ErrWritten, t0+1)
		// Appends carry on at the tail and skip the junk beyond it.
		for q := t1; q < ahead; q++ {
			m[q] = want{data: entry("reopened-%d-%d", round, q)}
			appendAt(t, l, q, m[q].data)
		}
		m[ahead+1] = want{data: entry("reopened-%d-skip", round)}
		appendAt(t, l, ahead+1, m[ahead+1].data)
		t1 = ahead + 2
		ahead = t1 + 2
		fillOK(t, l, ahead)
		m[ahead] = want{err: log.ErrFilled}
		m[ahead+1] = want{err: log.ErrNotWritten}
		trimOK(t, l, 3+log.Position(round))
		m.trim(3 + log.Position(round))
		m.check(t, l)
		wantTail(t, l, t1)
	}
}

// ---- log.BatchAppender (optional) ----

// testAppendBatch checks the optional batch append, when the log has one:
// positions ascend in the order given, the data is copied, concurrent
// batches and appends interleave without losing anything, and a batch with
// an oversized entry is refused.
func (s *suite) testAppendBatch(t *testing.T) {
	l := s.newLog(t)
	ba, ok := l.(log.BatchAppender)
	if !ok {
		t.Skipf("%T does not implement log.BatchAppender (optional)", l)
	}
	ctx := t.Context()
	appendAt(t, l, 0, entry("first"))
	bufs := [][]byte{entry("b0"), {}, entry("b2")}
	pos, err := ba.AppendBatch(ctx, bufs)
	if err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	if len(pos) != len(bufs) {
		t.Fatalf("AppendBatch returned %d positions for %d entries", len(pos), len(bufs))
	}
	for i := range bufs {
		for j := range bufs[i] {
			bufs[i][j] = 'Z' // the log must have copied
		}
	}
	for i, want := range [][]byte{entry("b0"), {}, entry("b2")} {
		if pos[i] < 1 || (i > 0 && pos[i] <= pos[i-1]) {
			t.Fatalf("AppendBatch positions %v: not ascending after position 0", pos)
		}
		readData(t, l, pos[i], want)
	}
	wantTail(t, l, pos[2]+1)

	if pos, err := ba.AppendBatch(ctx, nil); err != nil || len(pos) != 0 {
		t.Fatalf("AppendBatch(nil) = %v, %v; want no positions and no error", pos, err)
	}
	before := tail(t, l)
	if _, err := ba.AppendBatch(ctx, [][]byte{entry("x"), make([]byte, log.MaxEntrySize+1)}); !errors.Is(err, log.ErrTooLarge) {
		t.Fatalf("AppendBatch with an oversized entry = %v, want ErrTooLarge", err)
	}
	wantTail(t, l, before) // refused whole: nothing taken

	// Concurrent batches and single appends: every entry lands once, each
	// batch in its order.
	const writers, rounds = 8, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[log.Position][]byte{}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if w%2 == 0 {
					data := [][]byte{entry("w%d-r%d-a", w, r), entry("w%d-r%d-b", w, r)}
					ps, err := ba.AppendBatch(ctx, data)
					if err != nil {
						t.Errorf("concurrent AppendBatch: %v", err)
						return
					}
					if ps[0] >= ps[1] {
						t.Errorf("concurrent AppendBatch positions %v not ascending", ps)
					}
					mu.Lock()
					got[ps[0]], got[ps[1]] = data[0], data[1]
					mu.Unlock()
					continue
				}
				data := entry("w%d-r%d", w, r)
				p, err := l.Append(ctx, data)
				if err != nil {
					t.Errorf("concurrent Append: %v", err)
					return
				}
				mu.Lock()
				got[p] = data
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if want := writers / 2 * rounds * 3; len(got) != want {
		t.Fatalf("%d distinct positions for %d entries", len(got), want)
	}
	for p, want := range got {
		readData(t, l, p, want)
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := ba.AppendBatch(ctx, [][]byte{entry("late")}); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("AppendBatch after Close = %v, want ErrClosed", err)
	}
}

// testReadRange checks any log.RangeReader: every range of entries of many
// sizes (with the range running past the end, or starting there) is the
// same slice of what Read returns, with the entry's length; junk, holes
// beyond the tail and trimmed positions answer as Read does; a negative
// range is an error.
func (s *suite) testReadRange(t *testing.T) {
	l := s.newLog(t)
	rr, ok := l.(log.RangeReader)
	if !ok {
		t.Skipf("%T does not implement log.RangeReader (optional)", l)
	}
	ctx := t.Context()
	r := rand.New(rand.NewPCG(7, 7))
	var entries [][]byte
	for _, n := range []int{0, 1, 100, 2011, 2012, 2013, 4100, 10000, 70000} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		appendAt(t, l, log.Position(len(entries)), data)
		entries = append(entries, data)
	}
	for p, data := range entries {
		n := len(data)
		ranges := [][2]int{{0, n}, {0, 1}, {1, 50}, {max(n-1, 0), 10}, {n, 5}, {n + 10, 5}, {0, n + 100}, {0, 0}}
		for range 20 {
			off := r.IntN(n + 1)
			ranges = append(ranges, [2]int{off, r.IntN(n - off + 2)})
		}
		for _, rg := range ranges {
			got, size, err := rr.ReadRange(ctx, log.Position(p), rg[0], rg[1])
			lo := min(rg[0], n)
			want := data[lo : lo+min(rg[1], n-lo)]
			if err != nil || size != n || !bytes.Equal(got, want) {
				t.Fatalf("ReadRange(%d, %d, %d) = %d bytes, size %d, %v; want %d bytes, size %d", p, rg[0], rg[1], len(got), size, err, len(want), n)
			}
		}
	}
	if _, _, err := rr.ReadRange(ctx, 3, -1, 5); err == nil {
		t.Fatal("ReadRange with a negative offset: no error")
	}
	if _, _, err := rr.ReadRange(ctx, 3, 0, -5); err == nil {
		t.Fatal("ReadRange with a negative length: no error")
	}
	tail := log.Position(len(entries))
	if err := l.Fill(ctx, tail); err != nil {
		t.Fatalf("Fill(%d): %v", tail, err)
	}
	if _, _, err := rr.ReadRange(ctx, tail, 0, 1); !errors.Is(err, log.ErrFilled) {
		t.Fatalf("ReadRange of junk: %v, want ErrFilled", err)
	}
	if _, _, err := rr.ReadRange(ctx, tail+5, 0, 1); !errors.Is(err, log.ErrNotWritten) {
		t.Fatalf("ReadRange beyond the tail: %v, want ErrNotWritten", err)
	}
	if err := l.Trim(ctx, 2); err != nil {
		t.Fatalf("Trim: %v", err)
	}
	if _, _, err := rr.ReadRange(ctx, 1, 0, 1); !errors.Is(err, log.ErrTrimmed) {
		t.Fatalf("ReadRange of a trimmed position: %v, want ErrTrimmed", err)
	}
}
