package memlog

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
)

// Many concurrent waits of different lengths, some cancelled, some cut short
// by Close: none ends early, cancelled ones end with their context, and the
// waker goes away once nobody waits.
func TestWakerManyWaiters(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	done := make(chan struct{})  // closed part way: "Close" for mode-2 waiters
	never := make(chan struct{}) // the others' log is never closed
	var wg sync.WaitGroup
	var ended atomic.Int32
	for i := range 300 {
		d := time.Duration(r.IntN(4000)) * time.Microsecond
		mode := i % 10
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if mode == 1 {
				c, cancel := context.WithCancel(ctx)
				ctx = c
				time.AfterFunc(d/2, cancel) // a cancel during the wait: the subject
			}
			closed := never
			if mode == 2 {
				closed = done
			}
			start := time.Now()
			err := sleep(ctx, closed, d)
			took := time.Since(start)
			ended.Add(1)
			switch {
			case mode == 1 && err != nil:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("cancelled wait of %v: %v", d, err)
				}
			case mode == 2 && err != nil:
				if !errors.Is(err, log.ErrClosed) {
					t.Errorf("wait of %v cut by close: %v", d, err)
				}
			case err != nil:
				t.Errorf("wait of %v: %v", d, err)
			case took < d: // a lower bound, the waker's promise: load cannot break it
				t.Errorf("wait of %v ended after %v", d, took)
			}
		}()
	}
	// "Close" once a third of the waits have ended, so that it cuts some
	// of the others short.
	testutil.Eventually(t, testutil.WaitLong, func() bool { return ended.Load() >= 100 })
	close(done)
	wg.Wait()
	// The waker stops once every wait has ended.
	testutil.Eventually(t, testutil.WaitLong, func() bool {
		theWaker.mu.Lock()
		defer theWaker.mu.Unlock()
		return !theWaker.running && len(theWaker.waiters) == 0
	})
}
