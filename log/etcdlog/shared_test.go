package etcdlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/logtest"
)

// TestTwoLogsOneName: two Logs on one name (each with its own client, as
// two machines would have) append and fill concurrently. Positions are
// dense and unique, every appended entry reads back from both, every fill
// either took its position or met data there, and each Log's WaitTail sees
// the other's appends.
func TestTwoLogsOneName(t *testing.T) {
	url := sharedEtcd(t)
	name := uniqueName(t)
	logs := []*Log{mustOpen(t, newClient(t, url), name, nil), mustOpen(t, newClient(t, url), name, nil)}
	ctx := t.Context()
	const writers, perWriter, fillers, fills = 8, 40, 2, 40

	var mu sync.Mutex
	owner := map[log.Position]string{}
	junk := map[log.Position]bool{}
	var wg sync.WaitGroup
	for li, l := range logs {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWriter {
					data := fmt.Sprintf("l%d-w%d-%d", li, w, i)
					var p log.Position
					var err error
					if i%4 == 3 {
						var ps []log.Position
						ps, err = l.AppendBatch(ctx, [][]byte{[]byte(data), []byte(data + "b")})
						if err == nil {
							p = ps[0]
							mu.Lock()
							if _, dup := owner[ps[1]]; dup {
								t.Errorf("position %d given twice", ps[1])
							}
							owner[ps[1]] = data + "b"
							mu.Unlock()
						}
					} else {
						p, err = l.Append(ctx, []byte(data))
					}
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
					mu.Lock()
					if other, dup := owner[p]; dup {
						t.Errorf("position %d given to %s and %s", p, other, data)
					}
					owner[p] = data
					mu.Unlock()
				}
			}()
		}
		for f := range fillers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range fills {
					tail, err := l.Tail(ctx)
					if err != nil {
						t.Errorf("tail: %v", err)
						return
					}
					p := tail + log.Position(f) // at the tail or just beyond
					switch err := l.Fill(ctx, p); {
					case err == nil:
						mu.Lock()
						junk[p] = true
						mu.Unlock()
					case !errors.Is(err, log.ErrWritten):
						t.Errorf("Fill(%d): %v", p, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for p := range junk {
		if _, ok := owner[p]; ok {
			t.Fatalf("position %d is both junk and %s", p, owner[p])
		}
	}
	// Dense: every position below the tail is data or junk. Fills beyond
	// the tail that no append passed lie past it.
	tail, err := logs[0].Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2*writers*perWriter + 2*writers*(perWriter/4); len(owner) != want {
		t.Fatalf("%d positions for %d entries", len(owner), want)
	}
	for p := range tail {
		data, isData := owner[p]
		for _, l := range logs {
			got, err := l.Read(ctx, p)
			switch {
			case isData && (err != nil || !bytes.Equal(got, []byte(data))):
				t.Fatalf("Read(%d) = %q, %v; want %q", p, got, err, data)
			case !isData && !errors.Is(err, log.ErrFilled):
				t.Fatalf("Read(%d) = %q, %v; want junk (a hole below the tail %d?)", p, got, err, tail)
			}
		}
	}
	// Each sees the tail move by the other's append without polling.
	for i, l := range logs {
		other := logs[1-i]
		before, err := l.Tail(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan log.Position, 1)
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			p, err := l.WaitTail(wctx, before)
			if err != nil {
				t.Errorf("WaitTail: %v", err)
			}
			got <- p
		}()
		p, err := other.Append(ctx, []byte("wake"))
		if err != nil {
			t.Fatal(err)
		}
		if w := <-got; w <= p {
			t.Fatalf("WaitTail(%d) = %d after the other appended at %d", before, w, p)
		}
	}
}

// TestWaitTail checks the optional interface's contract on one Log: at
// once when the tail is already past, woken by an append, by a fill at the
// tail and by a trim beyond it, and context and Close errors.
func TestWaitTail(t *testing.T) {
	cli := newClient(t, sharedEtcd(t))
	l := mustOpen(t, cli, uniqueName(t), nil)
	ctx := t.Context()
	if _, err := l.Append(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if p, err := l.WaitTail(ctx, 0); err != nil || p != 1 {
		t.Fatalf("WaitTail(0) = %d, %v; want 1 at once", p, err)
	}
	wake := func(name string, after log.Position, act func() error, want log.Position) {
		t.Helper()
		got := make(chan error, 1)
		go func() {
			p, err := l.WaitTail(ctx, after)
			if err == nil && p != want {
				err = fmt.Errorf("returned %d, want %d", p, want)
			}
			got <- err
		}()
		if err := act(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := <-got; err != nil {
			t.Fatalf("WaitTail(%d) woken by %s: %v", after, name, err)
		}
	}
	wake("append", 1, func() error { _, err := l.Append(ctx, []byte("b")); return err }, 3-1)
	wake("fill", 2, func() error { return l.Fill(ctx, 2) }, 3)
	wake("trim", 3, func() error { return l.Trim(ctx, 10) }, 10)

	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.WaitTail(cctx, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitTail with an expiring context = %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := l.WaitTail(ctx, 10); done <- err }()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, log.ErrClosed) {
		t.Fatalf("WaitTail across Close = %v, want ErrClosed", err)
	}
}

// TestConformanceTwoHandles runs the suite where every log is really two
// Logs on one name: appends and fills go to one, reads, tails and trims to
// the other, so every check also checks that one sees the other.
func TestConformanceTwoHandles(t *testing.T) {
	t.Parallel() // logs of its own names
	url := sharedEtcd(t)
	cw, cr := newClient(t, url), newClient(t, url)
	open := func(t *testing.T) log.Log {
		name := uniqueName(t)
		return &pair{w: mustOpen(t, cw, name, nil), r: mustOpen(t, cr, name, nil)}
	}
	logtest.Run(t, open, logtest.RaceRounds(50))
}

type pair struct{ w, r *Log }

func (p *pair) Append(ctx context.Context, d []byte) (log.Position, error) { return p.w.Append(ctx, d) }
func (p *pair) AppendBatch(ctx context.Context, d [][]byte) ([]log.Position, error) {
	return p.w.AppendBatch(ctx, d)
}
func (p *pair) Read(ctx context.Context, pos log.Position) ([]byte, error) { return p.r.Read(ctx, pos) }
func (p *pair) Fill(ctx context.Context, pos log.Position) error           { return p.w.Fill(ctx, pos) }
func (p *pair) Trim(ctx context.Context, pos log.Position) error           { return p.r.Trim(ctx, pos) }
func (p *pair) Tail(ctx context.Context) (log.Position, error)             { return p.r.Tail(ctx) }
func (p *pair) Close() error {
	err := p.w.Close()
	_ = p.r.Close()
	return err
}
