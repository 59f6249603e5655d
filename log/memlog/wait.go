package memlog

import (
	"container/heap"
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// Latency is applied by one shared waker rather than by each waiting call:
// time.Sleep and timers overshoot by up to about a millisecond on Linux, so
// precise short waits need someone polling the clock, and one poller for all
// waiting calls keeps the CPU cost bounded however many appends are in
// flight. The waker goroutine runs only while there are waiters: it sleeps on
// a timer until spinSlack before the earliest deadline, then yields the
// processor in a loop (runtime.Gosched) polling the clock, and wakes each
// waiter at its deadline by closing its channel.

// spinSlack is how long before a deadline the waker stops trusting its timer
// and starts polling the clock.
const spinSlack = 1500 * time.Microsecond

type waiter struct {
	deadline time.Time
	ch       chan struct{}
	index    int // in the heap; -1 once woken or removed
}

type waiterHeap []*waiter

func (h waiterHeap) Len() int           { return len(h) }
func (h waiterHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h waiterHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *waiterHeap) Push(x any) {
	w := x.(*waiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *waiterHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.index = -1
	return w
}

type waker struct {
	mu      sync.Mutex
	waiters waiterHeap
	running bool
	kick    chan struct{} // an earlier deadline arrived while sleeping
}

var theWaker = &waker{kick: make(chan struct{}, 1)}

func (k *waker) add(w *waiter) {
	k.mu.Lock()
	heap.Push(&k.waiters, w)
	first := w.index == 0
	start := !k.running
	k.running = true
	k.mu.Unlock()
	if start {
		go k.run()
	} else if first {
		select {
		case k.kick <- struct{}{}:
		default:
		}
	}
}

func (k *waker) remove(w *waiter) {
	k.mu.Lock()
	if w.index >= 0 {
		heap.Remove(&k.waiters, w.index)
	}
	k.mu.Unlock()
}

func (k *waker) run() {
	var timer *time.Timer
	for {
		k.mu.Lock()
		now := time.Now()
		for len(k.waiters) > 0 && !k.waiters[0].deadline.After(now) {
			close(heap.Pop(&k.waiters).(*waiter).ch)
		}
		if len(k.waiters) == 0 {
			k.running = false
			k.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return
		}
		rest := k.waiters[0].deadline.Sub(now)
		k.mu.Unlock()
		if rest <= spinSlack {
			runtime.Gosched()
			continue
		}
		if timer == nil {
			timer = time.NewTimer(rest - spinSlack)
		} else {
			timer.Reset(rest - spinSlack)
		}
		select {
		case <-timer.C:
		case <-k.kick:
		}
	}
}

// sleep waits d, returning early with the context's error or log.ErrClosed
// when ctx ends or done is closed. It never returns nil before d has passed.
func sleep(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	w := &waiter{deadline: time.Now().Add(d), ch: make(chan struct{})}
	theWaker.add(w)
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		theWaker.remove(w)
		return ctx.Err()
	case <-done:
		theWaker.remove(w)
		return log.ErrClosed
	}
}
