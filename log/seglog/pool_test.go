package seglog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// TestPooledRequestsWithWithdrawals: appends, batches, fills and trims
// share pooled requests (groupcommit.Get/Put), and some appends are
// withdrawn while queued (their context expires behind a slow fdatasync).
// Every acknowledged entry must read back as the data its own call gave,
// at a position no other call got; a withdrawn request (never returned to
// the pool) must not be written; so a request reused while the committer
// still held it would show as a wrong position, a wrong entry, or a race.
func TestPooledRequestsWithWithdrawals(t *testing.T) {
	opts := &Options{NoSync: true, syncHook: func(*os.File) error {
		time.Sleep(50 * time.Microsecond) // a slow disk: requests queue behind each group
		return nil
	}}
	l := mustOpen(t, t.TempDir(), opts)
	defer l.Close()
	type acked struct {
		pos  log.Position
		data []byte
	}
	var mu sync.Mutex
	var got []acked
	withdrawn := 0
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 150 {
				data := []byte(fmt.Sprintf("w%d-i%d-%s", w, i, bytes.Repeat([]byte{'x'}, rng.IntN(300))))
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if rng.IntN(3) == 0 {
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rng.IntN(100))*time.Microsecond)
				}
				switch rng.IntN(10) {
				case 0: // a batch of two, never withdrawn (a batch withdrawn in
					// part would leave an entry acknowledged to nobody)
					cancel()
					second := append(bytes.Clone(data), '2')
					ps, err := l.AppendBatch(context.Background(), [][]byte{data, second})
					mu.Lock()
					if err == nil {
						got = append(got, acked{ps[0], data}, acked{ps[1], second})
					} else if errors.Is(err, context.DeadlineExceeded) {
						withdrawn++
					} else {
						t.Errorf("AppendBatch: %v", err)
					}
					mu.Unlock()
				case 1: // a fill far ahead, or a trim of nothing
					err := l.Fill(ctx, log.Position(1<<40+uint64(w*1000+i)))
					cancel()
					if err != nil && !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Fill: %v", err)
					}
				default:
					p, err := l.Append(ctx, data)
					cancel()
					mu.Lock()
					if err == nil {
						got = append(got, acked{p, data})
					} else if errors.Is(err, context.DeadlineExceeded) {
						withdrawn++
					} else {
						t.Errorf("Append: %v", err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[log.Position]bool{}
	for _, a := range got {
		if seen[a.pos] {
			t.Fatalf("position %d acknowledged twice", a.pos)
		}
		seen[a.pos] = true
		b, err := l.Read(context.Background(), a.pos)
		if err != nil || !bytes.Equal(b, a.data) {
			t.Fatalf("Read(%d) = %q, %v; want %q", a.pos, b, err, a.data)
		}
	}
	tail, err := l.Tail(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Every position below the tail holds an acknowledged entry: nothing
	// withdrawn was written.
	for p := log.Position(0); p < tail; p++ {
		if !seen[p] {
			b, err := l.Read(context.Background(), p)
			t.Fatalf("position %d holds %q (%v), acknowledged to nobody", p, b, err)
		}
	}
	t.Logf("%d entries acknowledged, %d calls withdrawn", len(got), withdrawn)
}
