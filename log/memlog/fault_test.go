package memlog_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// holdAppend returns an Inject hook holding the Append calls whose Seq is in
// seqs (first attempt only) at g.
func holdAppend(g *memlog.Gate, seqs ...uint64) func(memlog.Call, *rand.Rand) memlog.Fault {
	return func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op != memlog.OpAppend || c.Attempt != 0 {
			return memlog.Fault{}
		}
		for _, s := range seqs {
			if c.Seq == s {
				return memlog.Fault{Hold: g}
			}
		}
		return memlog.Fault{}
	}
}

type result struct {
	pos log.Position
	err error
}

func goAppend(l *memlog.Log, ctx context.Context, data string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		p, err := l.Append(ctx, []byte(data))
		ch <- result{p, err}
	}()
	return ch
}

func mustAppend(t *testing.T, l *memlog.Log, data string) log.Position {
	t.Helper()
	p, err := l.Append(context.Background(), []byte(data))
	if err != nil {
		t.Fatalf("Append(%q): %v", data, err)
	}
	return p
}

func wantData(t *testing.T, l *memlog.Log, p log.Position, want string) {
	t.Helper()
	got, err := l.Read(context.Background(), p)
	if err != nil || string(got) != want {
		t.Fatalf("Read(%d) = %q, %v; want %q", p, got, err, want)
	}
}

func wantReadErr(t *testing.T, l *memlog.Log, p log.Position, want error) {
	t.Helper()
	got, err := l.Read(context.Background(), p)
	if !errors.Is(err, want) {
		t.Fatalf("Read(%d) = %q, %v; want %v", p, got, err, want)
	}
}

func wantTail(t *testing.T, l *memlog.Log, want log.Position) {
	t.Helper()
	got, err := l.Tail(context.Background())
	if err != nil || got != want {
		t.Fatalf("Tail = %d, %v; want %d", got, err, want)
	}
}

func TestHeldAppendLeavesHoleUntilReleased(t *testing.T) {
	g := memlog.NewGate()
	l := memlog.New(&memlog.Options{Inject: holdAppend(g, 0)})
	held := goAppend(l, context.Background(), "late")
	<-g.Held()

	// The held append owns position 0: a hole below the tail.
	wantTail(t, l, 1)
	wantReadErr(t, l, 0, log.ErrNotWritten)
	if s := l.Stats(); s.InFlight != 1 || g.Waiting() != 1 {
		t.Fatalf("InFlight = %d, Waiting = %d; want 1, 1", s.InFlight, g.Waiting())
	}
	// Later appends go past it.
	if p := mustAppend(t, l, "early"); p != 1 {
		t.Fatalf("second Append = %d, want 1", p)
	}
	wantReadErr(t, l, 0, log.ErrNotWritten)

	g.Release()
	r := <-held
	if r.err != nil || r.pos != 0 {
		t.Fatalf("held Append = %d, %v; want 0, nil", r.pos, r.err)
	}
	wantData(t, l, 0, "late")
	wantData(t, l, 1, "early")
	if s := l.Stats(); s.InFlight != 0 || s.Retries != 0 {
		t.Fatalf("after release: %+v", s)
	}
}

func TestFillDuringHoldWins(t *testing.T) {
	g := memlog.NewGate()
	var mu sync.Mutex
	var calls []memlog.Call
	l := memlog.New(&memlog.Options{Inject: func(c memlog.Call, r *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend {
			mu.Lock()
			calls = append(calls, c)
			mu.Unlock()
		}
		return holdAppend(g, 0)(c, r)
	}})
	held := goAppend(l, context.Background(), "late")
	<-g.Held()
	if err := l.Fill(context.Background(), 0); err != nil {
		t.Fatalf("Fill(0) of a held position: %v", err)
	}
	g.Release()
	r := <-held
	if r.err != nil || r.pos != 1 {
		t.Fatalf("held Append after its position was filled = %d, %v; want 1, nil", r.pos, r.err)
	}
	wantReadErr(t, l, 0, log.ErrFilled)
	wantData(t, l, 1, "late")
	if s := l.Stats(); s.Retries != 1 || s.Appends != 1 {
		t.Fatalf("Stats = %+v; want 1 append, 1 retry", s)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []memlog.Call{{Op: memlog.OpAppend, Pos: 0}, {Op: memlog.OpAppend, Pos: 1, Attempt: 1}}
	if len(calls) != 2 || calls[0] != want[0] || calls[1] != want[1] {
		t.Fatalf("Inject saw %+v, want %+v", calls, want)
	}
}

func TestTrimDuringHold(t *testing.T) {
	g := memlog.NewGate()
	l := memlog.New(&memlog.Options{Inject: holdAppend(g, 1)})
	mustAppend(t, l, "a")
	held := goAppend(l, context.Background(), "late")
	<-g.Held()
	if err := l.Trim(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	g.Release()
	r := <-held
	if r.err != nil || r.pos != 2 {
		t.Fatalf("held Append after its position was trimmed = %d, %v; want 2, nil", r.pos, r.err)
	}
	wantReadErr(t, l, 1, log.ErrTrimmed)
	wantData(t, l, 2, "late")
}

func TestHeldAppendGivesUp(t *testing.T) {
	g := memlog.NewGate()
	l := memlog.New(&memlog.Options{Inject: holdAppend(g, 0, 1)})

	ctx, cancel := context.WithCancel(context.Background())
	held := goAppend(l, ctx, "cancelled")
	<-g.Held()
	cancel()
	r := <-held
	if !errors.Is(r.err, context.Canceled) || !strings.Contains(r.err.Error(), "position 0") {
		t.Fatalf("cancelled held Append = %v; want context.Canceled naming position 0", r.err)
	}
	wantReadErr(t, l, 0, log.ErrNotWritten) // the writer gave up: a hole

	held = goAppend(l, context.Background(), "closed")
	testutil.Eventually(t, testutil.WaitLong, func() bool { return g.Waiting() > 0 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-held; !errors.Is(r.err, log.ErrClosed) {
		t.Fatalf("held Append across Close = %v; want ErrClosed", r.err)
	}
	g.Release()
}

func TestHoldOtherOperations(t *testing.T) {
	g := memlog.NewGate()
	l := memlog.New(nil)
	mustAppend(t, l, "a")
	l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpFill {
			return memlog.Fault{Hold: g}
		}
		return memlog.Fault{}
	})
	done := make(chan error, 1)
	go func() { done <- l.Fill(context.Background(), 1) }()
	<-g.Held()
	// The fill has not landed: an append takes position 1 first.
	if p := mustAppend(t, l, "b"); p != 1 {
		t.Fatalf("Append = %d, want 1", p)
	}
	g.Release()
	if err := <-done; !errors.Is(err, log.ErrWritten) {
		t.Fatalf("held Fill(1) after an append landed there = %v; want ErrWritten", err)
	}
}

func TestCrashClone(t *testing.T) {
	g := memlog.NewGate()
	l := memlog.New(nil)
	ctx := context.Background()
	mustAppend(t, l, "p0")
	mustAppend(t, l, "p1")
	if err := l.Fill(ctx, 2); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, "p3") // skips the junk at 2
	l.SetInject(holdAppend(g, 3))
	held := goAppend(l, ctx, "in-flight") // takes 4, held
	<-g.Held()
	mustAppend(t, l, "p5")
	if err := l.Fill(ctx, 9); err != nil { // beyond the tail
		t.Fatal(err)
	}
	if err := l.Trim(ctx, 1); err != nil {
		t.Fatal(err)
	}

	c := l.CrashClone()
	g.Release()
	if r := <-held; r.err != nil || r.pos != 4 {
		t.Fatalf("held Append on the original = %d, %v; want 4, nil", r.pos, r.err)
	}

	// The original has the late write; the clone lost it.
	wantData(t, l, 4, "in-flight")
	wantReadErr(t, c, 0, log.ErrTrimmed)
	wantData(t, c, 1, "p1")
	wantReadErr(t, c, 2, log.ErrFilled)
	wantData(t, c, 3, "p3")
	wantReadErr(t, c, 4, log.ErrNotWritten)
	wantData(t, c, 5, "p5")
	wantReadErr(t, c, 9, log.ErrFilled)
	wantTail(t, c, 6)
	if s := c.Stats(); s != (memlog.Stats{Reads: 7, Tails: 1}) {
		t.Fatalf("clone Stats = %+v", s)
	}

	// They are independent, and the clone has no hook: nothing is held.
	for i, want := range []log.Position{6, 7, 8, 10} {
		if p := mustAppend(t, c, "clone"); p != want {
			t.Fatalf("clone Append %d = %d, want %d", i, p, want)
		}
	}
	if err := c.Fill(ctx, 4); err != nil {
		t.Fatal(err)
	}
	wantReadErr(t, c, 4, log.ErrFilled)
	wantData(t, l, 4, "in-flight")
	wantReadErr(t, l, 6, log.ErrNotWritten)
	wantTail(t, l, 6)
	if p := mustAppend(t, l, "orig"); p != 6 {
		t.Fatalf("original Append = %d, want 6", p)
	}
	wantData(t, c, 6, "clone")

	// A closed log can still be cloned (this is how memlog "reopens").
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := l.CrashClone()
	wantData(t, c2, 6, "orig")
	wantData(t, c2, 4, "in-flight")
}

func TestDropLeavesPermanentHole(t *testing.T) {
	l := memlog.New(&memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && c.Seq == 1 {
			return memlog.Fault{Drop: true}
		}
		return memlog.Fault{}
	}})
	mustAppend(t, l, "a")
	_, err := l.Append(context.Background(), []byte("dropped"))
	if !errors.Is(err, memlog.ErrInjected) || !strings.Contains(err.Error(), "position 1") {
		t.Fatalf("dropped Append = %v; want ErrInjected naming position 1", err)
	}
	for i := range 5 {
		if p := mustAppend(t, l, "later"); p != log.Position(2+i) {
			t.Fatalf("Append = %d, want %d", p, 2+i)
		}
	}
	wantReadErr(t, l, 1, log.ErrNotWritten)
	if s := l.Stats(); s.InFlight != 0 || s.Injected != 1 {
		t.Fatalf("Stats = %+v", s)
	}
	if err := l.Fill(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	wantReadErr(t, l, 1, log.ErrFilled)
}

func TestDropWithHoldDiesLate(t *testing.T) {
	g := memlog.NewGate()
	boom := errors.New("writer crashed")
	l := memlog.New(&memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend {
			return memlog.Fault{Drop: true, Hold: g, Err: boom}
		}
		return memlog.Fault{}
	}})
	held := goAppend(l, context.Background(), "x")
	<-g.Held()
	wantTail(t, l, 1)
	g.Release()
	if r := <-held; !errors.Is(r.err, boom) {
		t.Fatalf("Append = %v, want %v", r.err, boom)
	}
	wantReadErr(t, l, 0, log.ErrNotWritten)
}

var errBoom = errors.New("boom")

func TestInjectedErrorsComeBackWrapped(t *testing.T) {
	ctx := context.Background()
	l := memlog.New(nil)
	mustAppend(t, l, "a")
	mustAppend(t, l, "b")
	l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		return memlog.Fault{Err: errBoom}
	})
	check := func(name string, err error, pos string) {
		t.Helper()
		if !errors.Is(err, errBoom) {
			t.Fatalf("%s = %v, want it to wrap %v", name, err, errBoom)
		}
		if pos != "" && !strings.Contains(err.Error(), pos) {
			t.Fatalf("%s = %q, want it to name %q", name, err, pos)
		}
	}
	_, err := l.Append(ctx, []byte("x"))
	check("Append", err, "")
	_, err = l.Read(ctx, 1)
	check("Read(1)", err, "position 1")
	check("Fill(7)", l.Fill(ctx, 7), "position 7")
	check("Trim(1)", l.Trim(ctx, 1), "position 1")
	_, err = l.Tail(ctx)
	check("Tail", err, "")

	// None of them had an effect; the failed Append took no position.
	l.SetInject(nil)
	wantTail(t, l, 2)
	wantData(t, l, 0, "a")
	wantReadErr(t, l, 7, log.ErrNotWritten)
	if p := mustAppend(t, l, "c"); p != 2 {
		t.Fatalf("Append after failed Append = %d, want 2", p)
	}
	if s := l.Stats(); s.Injected != 5 {
		t.Fatalf("Injected = %d, want 5", s.Injected)
	}
}

func TestAckLost(t *testing.T) {
	ctx := context.Background()
	l := memlog.New(&memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Seq == 0 && (c.Op == memlog.OpAppend || c.Op == memlog.OpFill || c.Op == memlog.OpTrim) {
			return memlog.Fault{AckLost: true}
		}
		return memlog.Fault{}
	}})
	_, err := l.Append(ctx, []byte("landed"))
	if !errors.Is(err, memlog.ErrInjected) || !strings.Contains(err.Error(), "position 0") {
		t.Fatalf("Append with a lost ack = %v; want ErrInjected naming position 0", err)
	}
	wantData(t, l, 0, "landed") // it is there all the same
	if err := l.Fill(ctx, 3); !errors.Is(err, memlog.ErrInjected) {
		t.Fatalf("Fill with a lost ack = %v", err)
	}
	wantReadErr(t, l, 3, log.ErrFilled)
	mustAppend(t, l, "p1")
	if err := l.Trim(ctx, 1); !errors.Is(err, memlog.ErrInjected) {
		t.Fatalf("Trim with a lost ack = %v", err)
	}
	wantReadErr(t, l, 0, log.ErrTrimmed)
}

func TestAppendLatencyLeavesHoles(t *testing.T) {
	const lat = 30 * time.Millisecond
	l := memlog.New(&memlog.Options{AppendLatency: lat})
	start := time.Now()
	inFlight := goAppend(l, context.Background(), "slow")
	// The position is taken before the wait.
	for {
		if tl, _ := l.Tail(context.Background()); tl == 1 {
			break
		}
		runtimeYield()
	}
	wantReadErr(t, l, 0, log.ErrNotWritten)
	if s := l.Stats(); s.InFlight != 1 {
		t.Fatalf("InFlight = %d during the latency, want 1", s.InFlight)
	}
	r := <-inFlight
	if r.err != nil || r.pos != 0 {
		t.Fatalf("Append = %d, %v", r.pos, r.err)
	}
	if d := time.Since(start); d < lat {
		t.Fatalf("Append took %v, less than its latency %v", d, lat)
	}
	wantData(t, l, 0, "slow")

	// A fill during the latency wins; the append retries at a new position
	// (and waits again).
	start = time.Now()
	inFlight = goAppend(l, context.Background(), "loser")
	for {
		if tl, _ := l.Tail(context.Background()); tl == 2 {
			break
		}
		runtimeYield()
	}
	if err := l.Fill(context.Background(), 1); err != nil {
		t.Fatalf("Fill(1) during the append's latency: %v", err)
	}
	r = <-inFlight
	if r.err != nil || r.pos != 2 {
		t.Fatalf("Append that lost its position = %d, %v; want 2", r.pos, r.err)
	}
	if d := time.Since(start); d < 2*lat {
		t.Fatalf("Append with one retry took %v, less than twice its latency", d)
	}
	wantReadErr(t, l, 1, log.ErrFilled)
	wantData(t, l, 2, "loser")
}

func TestReadLatency(t *testing.T) {
	const lat = 3 * time.Millisecond
	l := memlog.New(&memlog.Options{ReadLatency: lat})
	mustAppend(t, l, "a")
	start := time.Now()
	wantData(t, l, 0, "a")
	if d := time.Since(start); d < lat {
		t.Fatalf("Read took %v, less than %v", d, lat)
	}
	// Appends are not slowed by ReadLatency.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := l.Append(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	// A wait ends with the context.
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	slow := memlog.New(&memlog.Options{ReadLatency: time.Hour})
	if _, err := slow.Read(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with an hour of latency and a 1 ms deadline = %v", err)
	}
}

func TestLatencyDistributionIsSeeded(t *testing.T) {
	run := func(seed uint64) ([]time.Duration, time.Duration) {
		var drawn []time.Duration
		l := memlog.New(&memlog.Options{Seed: seed, Latency: func(op memlog.Op, r *rand.Rand) time.Duration {
			d := time.Duration(r.IntN(200)) * time.Microsecond
			drawn = append(drawn, d) // hooks are never called concurrently
			return d
		}})
		start := time.Now()
		ctx := context.Background()
		for i := range 10 {
			mustAppend(t, l, "x")
			if _, err := l.Read(ctx, log.Position(i)); err != nil {
				t.Fatal(err)
			}
		}
		_ = l.Fill(ctx, 100)
		_, _ = l.Tail(ctx)
		_ = l.Trim(ctx, 1)
		return drawn, time.Since(start)
	}
	a, took := run(42)
	b, _ := run(42)
	c, _ := run(43)
	if len(a) != 23 {
		t.Fatalf("Latency called %d times, want 23 (once per call)", len(a))
	}
	var sum time.Duration
	for i := range a {
		sum += a[i]
		if a[i] != b[i] {
			t.Fatalf("same seed, different latency at call %d: %v vs %v", i, a[i], b[i])
		}
	}
	if took < sum {
		t.Fatalf("calls took %v, less than the %v of latency drawn", took, sum)
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatal("seeds 42 and 43 drew the same latencies")
	}
}

func TestSetInjectAtRunTime(t *testing.T) {
	l := memlog.New(nil)
	mustAppend(t, l, "a")
	var hits int
	f := func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		hits++
		if c.Op == memlog.OpRead {
			return memlog.Fault{Err: errBoom}
		}
		return memlog.Fault{}
	}
	if prev := l.SetInject(f); prev != nil {
		t.Fatal("SetInject on a fresh log returned a previous hook")
	}
	if _, err := l.Read(context.Background(), 0); !errors.Is(err, errBoom) {
		t.Fatalf("Read with an armed fault = %v", err)
	}
	if prev := l.SetInject(nil); prev == nil {
		t.Fatal("SetInject did not return the armed hook")
	}
	wantData(t, l, 0, "a")
	if hits != 1 {
		t.Fatalf("hook called %d times, want 1", hits)
	}
}

func TestSeqNumbersCallsPerOperation(t *testing.T) {
	var got []memlog.Call
	l := memlog.New(&memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		got = append(got, c)
		return memlog.Fault{}
	}})
	ctx := context.Background()
	mustAppend(t, l, "a")
	_, _ = l.Read(ctx, 0)
	mustAppend(t, l, "b")
	_, _ = l.Read(ctx, 1)
	_ = l.Fill(ctx, 5)
	_, _ = l.Tail(ctx)
	_ = l.Trim(ctx, 1)
	want := []memlog.Call{
		{Op: memlog.OpAppend, Pos: 0, Seq: 0},
		{Op: memlog.OpRead, Pos: 0, Seq: 0},
		{Op: memlog.OpAppend, Pos: 1, Seq: 1},
		{Op: memlog.OpRead, Pos: 1, Seq: 1},
		{Op: memlog.OpFill, Pos: 5, Seq: 0},
		{Op: memlog.OpTail, Seq: 0},
		{Op: memlog.OpTrim, Pos: 1, Seq: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("calls = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("call %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if s := l.Stats(); s != (memlog.Stats{Appends: 2, Reads: 2, Fills: 1, Trims: 1, Tails: 1}) {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestBadInput(t *testing.T) {
	l := memlog.New(nil)
	var nilCtx context.Context // bad input: must not panic
	if p, err := l.Append(nilCtx, []byte("a")); err != nil || p != 0 {
		t.Fatalf("Append with a nil context = %d, %v", p, err)
	}
	if _, err := l.Read(nilCtx, 0); err != nil {
		t.Fatalf("Read with a nil context: %v", err)
	}
	ctx := context.Background()
	wantReadErr(t, l, math.MaxUint64, log.ErrNotWritten)
	if err := l.Fill(ctx, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	wantReadErr(t, l, math.MaxUint64, log.ErrFilled)
	// Trimming everything leaves no position to assign: Append must fail,
	// not wrap around.
	if err := l.Trim(ctx, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	wantReadErr(t, l, math.MaxUint64-1, log.ErrTrimmed)
	wantReadErr(t, l, math.MaxUint64, log.ErrFilled)
	if p, err := l.Append(ctx, []byte("x")); err == nil {
		t.Fatalf("Append with no position left = %d", p)
	}
	if op := memlog.Op(200).String(); op != "op(200)" {
		t.Fatalf("Op(200).String() = %q", op)
	}
}

func runtimeYield() { runtime.Gosched() }
