package logtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil/fixture"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/logtest"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// The kit is tested by running it against backends that each break one rule
// and checking that it fails, naming that rule. A failing suite fails its
// *testing.T, so each run happens in a child process: the test binary re-runs
// itself with brokenEnv naming the breakage, and TestBrokenBackend (which
// skips unless that variable is set) runs the suite there.

const brokenEnv = "LOGTEST_BROKEN_BACKEND"

// breakages maps a breakage to the subtest that must catch it. "none" is the
// control: the same wrapper, unbroken, must pass.
var breakages = []struct {
	name string
	rule string // subtest of Run that must fail
}{
	{"none", ""},
	{"fill-overwrites-data", "WriteOnce"},
	{"shared-read-slice", "ReadReturnsCopy"},
	{"retains-append-slice", "AppendCopiesData"},
	{"zero-length-is-junk", "ZeroLengthEntries"},
	{"accepts-too-large", "TooLarge"},
	{"append-leaves-gaps", "DensePositions"},
	{"fill-ahead-ignored", "FillBeyondTail"},
	{"trim-ignored", "Trim"},
	{"ignores-context", "CancelledContext"},
	{"usable-after-close", "Closed"},
	{"errors-without-position", "ErrorsNamePosition"},
	{"racy-fill", "AppendFillRace"},
	{"racy-append", "ConcurrentAppends"},
	{"forgets-on-reopen", "Persistence"},
	{"range-one-byte-late", "ReadRange"},
}

func TestKitCatchesBrokenBackends(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("inside a child process")
	}
	for _, b := range breakages {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			// The control runs the whole suite; a breakage, only the rule
			// that must catch it.
			run := "^TestBrokenBackend$"
			if b.rule != "" {
				run += "/^" + regexp.QuoteMeta(b.rule) + "$"
			}
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+run, "-test.timeout=90s")
			cmd.Env = append(os.Environ(), brokenEnv+"="+b.name)
			out, err := cmd.CombinedOutput()
			if b.rule == "" {
				if err != nil {
					t.Fatalf("the unbroken wrapper fails the suite (%v):\n%s", err, out)
				}
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("suite against %q: %v, want exit status 1 (a test failure)\n%s", b.name, err, out)
			}
			want := "--- FAIL: TestBrokenBackend/" + b.rule + " "
			if !bytes.Contains(out, []byte(want)) {
				t.Fatalf("suite against %q did not fail %s:\n%s", b.name, b.rule, out)
			}
			if bytes.Contains(out, []byte("panic:")) || bytes.Contains(out, []byte("DATA RACE")) {
				t.Fatalf("suite against %q failed for the wrong reason:\n%s", b.name, out)
			}
			t.Logf("caught by %s:\n%s", b.rule, failLines(out))
		})
	}
}

// failLines returns the failure lines of a test output, for the log.
func failLines(out []byte) string {
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "--- FAIL") || strings.Contains(line, ".go:") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// TestBrokenBackend runs the suite against the breakage named by brokenEnv.
func TestBrokenBackend(t *testing.T) {
	mode := os.Getenv(brokenEnv)
	if mode == "" {
		t.Skip("run by TestKitCatchesBrokenBackends in a child process")
	}
	open := func(t *testing.T) log.Log { return newBroken(mode, memlog.New(nil)) }
	reopen := func(t *testing.T, closed log.Log) log.Log {
		b := closed.(*broken)
		if mode == "forgets-on-reopen" {
			return newBroken(mode, memlog.New(nil))
		}
		return newBroken(mode, b.inner.CrashClone())
	}
	logtest.Run(t, open, logtest.Persistent(reopen), logtest.Holes(makeHole))
}

func makeHole(t *testing.T, l log.Log) log.Position {
	t.Helper()
	return fixture.Hole(t, l.(*broken).inner)
}

// broken wraps a memlog and breaks one rule of the contract.
type broken struct {
	mode  string
	inner *memlog.Log

	mu       sync.Mutex
	junk     map[log.Position]bool   // fill-overwrites-data: data turned junk
	shared   map[log.Position][]byte // shared-read-slice: the slice every Read returns
	retained map[log.Position][]byte // retains-append-slice: the caller's slice
	zero     map[log.Position]bool   // zero-length-is-junk
	next     log.Position            // racy-append: the broken sequencer
}

func newBroken(mode string, inner *memlog.Log) *broken {
	return &broken{
		mode: mode, inner: inner,
		junk: map[log.Position]bool{}, shared: map[log.Position][]byte{},
		retained: map[log.Position][]byte{}, zero: map[log.Position]bool{},
	}
}

func (b *broken) Append(ctx context.Context, data []byte) (log.Position, error) {
	if b.mode == "ignores-context" {
		ctx = context.Background()
	}
	switch b.mode {
	case "accepts-too-large":
		if len(data) > log.MaxEntrySize {
			data = data[:log.MaxEntrySize]
		}
	case "append-leaves-gaps":
		if t, err := b.inner.Tail(ctx); err == nil && t%4 == 1 {
			_ = b.inner.Fill(ctx, t)
		}
	case "racy-append":
		// Two appenders can read the same tail and both "win" it.
		t, err := b.inner.Tail(ctx)
		if err != nil {
			return 0, err
		}
		time.Sleep(50 * time.Microsecond) // latency between check and act: the breakage itself
		b.mu.Lock()
		defer b.mu.Unlock()
		p, err := b.inner.Append(ctx, data)
		if err == nil && p != t {
			b.retained[t] = bytes.Clone(data) // overwrite position t
			return t, nil
		}
		return p, err
	}
	p, err := b.inner.Append(ctx, data)
	if err != nil {
		return p, b.strip(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.mode {
	case "retains-append-slice":
		b.retained[p] = data
	case "zero-length-is-junk":
		if len(data) == 0 {
			b.zero[p] = true
		}
	}
	return p, nil
}

func (b *broken) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	if b.mode == "ignores-context" {
		ctx = context.Background()
	}
	b.mu.Lock()
	switch {
	case b.junk[pos]:
		b.mu.Unlock()
		return nil, fmt.Errorf("broken: read position %d: %w", pos, log.ErrFilled)
	case b.zero[pos]:
		b.mu.Unlock()
		return nil, fmt.Errorf("broken: read position %d: %w", pos, log.ErrFilled)
	case b.retained[pos] != nil:
		d := bytes.Clone(b.retained[pos])
		b.mu.Unlock()
		return d, nil
	case b.shared[pos] != nil:
		d := b.shared[pos]
		b.mu.Unlock()
		return d, nil
	}
	b.mu.Unlock()
	data, err := b.inner.Read(ctx, pos)
	if err != nil {
		return nil, b.strip(err)
	}
	if b.mode == "shared-read-slice" {
		b.mu.Lock()
		b.shared[pos] = data
		b.mu.Unlock()
	}
	return data, nil
}

func (b *broken) Fill(ctx context.Context, pos log.Position) error {
	if b.mode == "ignores-context" {
		ctx = context.Background()
	}
	switch b.mode {
	case "fill-ahead-ignored":
		if t, err := b.inner.Tail(ctx); err == nil && pos > t {
			return nil
		}
	case "racy-fill":
		// Check, then act: an append can land in between, and the
		// fill then claims a victory it did not have.
		if _, err := b.inner.Read(ctx, pos); err == nil {
			return fmt.Errorf("broken: fill position %d: %w", pos, log.ErrWritten)
		}
		time.Sleep(50 * time.Microsecond) // latency between check and act: the breakage itself
		if err := b.inner.Fill(ctx, pos); errors.Is(err, log.ErrWritten) {
			return nil
		}
	}
	err := b.inner.Fill(ctx, pos)
	if b.mode == "fill-overwrites-data" && errors.Is(err, log.ErrWritten) {
		b.mu.Lock()
		b.junk[pos] = true
		b.mu.Unlock()
		return nil
	}
	return b.strip(err)
}

func (b *broken) Trim(ctx context.Context, pos log.Position) error {
	if b.mode == "ignores-context" {
		ctx = context.Background()
	}
	if b.mode == "trim-ignored" {
		return nil
	}
	return b.strip(b.inner.Trim(ctx, pos))
}

func (b *broken) Tail(ctx context.Context) (log.Position, error) {
	if b.mode == "ignores-context" {
		ctx = context.Background()
	}
	p, err := b.inner.Tail(ctx)
	return p, b.strip(err)
}

func (b *broken) Close() error {
	if b.mode == "usable-after-close" {
		return nil
	}
	return b.inner.Close()
}

// strip drops the position from errors, in mode errors-without-position.
// ReadRange is memlog's, except that range-one-byte-late starts every
// range after the first byte one byte late.
func (b *broken) ReadRange(ctx context.Context, pos log.Position, off, n int) ([]byte, int, error) {
	if b.mode == "range-one-byte-late" && off > 0 {
		off++
	}
	data, size, err := b.inner.ReadRange(ctx, pos, off, n)
	return data, size, b.strip(err)
}

func (b *broken) strip(err error) error {
	if err == nil || b.mode != "errors-without-position" {
		return err
	}
	for _, s := range []error{log.ErrNotWritten, log.ErrWritten, log.ErrFilled, log.ErrTrimmed, log.ErrClosed, log.ErrTooLarge} {
		if errors.Is(err, s) {
			return fmt.Errorf("broken: %w", s)
		}
	}
	return err
}
