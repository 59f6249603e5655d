package groupcommit

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

// all takes every waiting request into group.
func all(group *[]*Request) func([]*Request) []*Request {
	return func(w []*Request) []*Request {
		*group = append(*group, w...)
		return w[:0]
	}
}

// A committer takes queued requests in order, claims and completes them;
// their waiters see the outcome.
func TestQueueTakeClaimComplete(t *testing.T) {
	var q Queue
	rs := []*Request{NewRequest(Append), NewRequest(Fill), Get(Trim)}
	if err := q.Add(rs[0]); err != nil {
		t.Fatal(err)
	}
	if err := q.Add(rs[1:]...); err != nil {
		t.Fatal(err)
	}
	// Take the first two only; the third stays.
	var group []*Request
	if failed := q.Take(func(w []*Request) []*Request {
		group = append(group, w[:2]...)
		return w[:copy(w, w[2:])]
	}); failed != nil {
		t.Fatal(failed)
	}
	if len(group) != 2 || group[0] != rs[0] || group[1] != rs[1] || q.Len() != 1 {
		t.Fatalf("group %v, %d left", group, q.Len())
	}
	for i, r := range group {
		if !r.Claim() || r.Claim() {
			t.Fatalf("request %d: claimed not exactly once", i)
		}
		r.Pos, r.Write = log.Position(10+i), true
		r.Complete()
	}
	pos, err := WaitAll(context.Background(), "x", group, nil)
	if err != nil || pos[0] != 10 || pos[1] != 11 {
		t.Fatalf("WaitAll = %v, %v", pos, err)
	}
	Put(rs[2])
}

// A waiter whose context ends while its request is queued withdraws it: the
// committer cannot claim it. Once claimed, the waiter waits for the outcome.
func TestWithdraw(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := NewRequest(Append)
	if err := r.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
	if r.Claim() {
		t.Fatal("a withdrawn request was claimed")
	}
	r2 := NewRequest(Append)
	if !r2.Claim() {
		t.Fatal("claim failed")
	}
	r2.Err = errors.New("boom")           // the committer's own error for it
	r2.Finish(errors.New("group failed")) // keeps it
	if err := r2.Wait(ctx); err != nil || r2.Err.Error() != "boom" {
		t.Fatalf("Wait on a claimed request = %v (request error %v)", err, r2.Err)
	}
	pos, err := WaitAll(ctx, "x", []*Request{NewRequest(Append)}, nil)
	if pos != nil || !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "x: append: ") {
		t.Fatalf("WaitAll with a withdrawn request = %v, %v", pos, err)
	}
}

// A failure is sticky: Add refuses, Take hands it to the group; Shut fails
// what waits with log.ErrClosed and refuses everything after.
func TestFailAndShut(t *testing.T) {
	var q Queue
	r := NewRequest(Fill)
	r.Pos = 7
	if err := q.Add(r); err != nil {
		t.Fatal(err)
	}
	first := errors.New("disk on fire")
	if q.Fail(first) != first || q.Fail(errors.New("later")) != first || q.Failed() != first {
		t.Fatal("the first failure is not the one kept")
	}
	if err := q.Add(NewRequest(Append)); err != first {
		t.Fatalf("Add after a failure = %v", err)
	}
	var group []*Request
	if failed := q.Take(all(&group)); failed != first || len(group) != 1 {
		t.Fatalf("Take = %v, %d requests", failed, len(group))
	}

	var q2 Queue
	w := NewRequest(Trim)
	w.Pos = 3
	q2.Add(w)
	if !q2.Shut("x") || q2.Shut("x") || !q2.IsShut() {
		t.Fatal("Shut must report true once")
	}
	if err := w.Wait(context.Background()); err != nil || !errors.Is(w.Err, log.ErrClosed) || w.Err.Error() != "x: trim position 3: log: closed" {
		t.Fatalf("waiting request after Shut: %v, %v", err, w.Err)
	}
	if err := q2.Add(NewRequest(Append)); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("Add after Shut = %v", err)
	}
}

func TestOpErrorAndCheckAppends(t *testing.T) {
	base := errors.New("e")
	a := &Request{Op: Append}
	for _, c := range []struct {
		r    *Request
		want string
	}{
		{a, "b: append: e"},
		{&Request{Op: Append, Pos: 4, Write: true}, "b: append at position 4: e"},
		{&Request{Op: Fill, Pos: 5}, "b: fill position 5: e"},
		{&Request{Op: Trim, Pos: 6}, "b: trim position 6: e"},
	} {
		if err := OpError("b", c.r, base); !errors.Is(err, base) || err.Error() != c.want {
			t.Errorf("OpError = %q, want %q", err, c.want)
		}
	}
	if err := CheckAppends(context.Background(), "b", []byte("ok"), make([]byte, log.MaxEntrySize+1)); !errors.Is(err, log.ErrTooLarge) {
		t.Fatalf("CheckAppends over the limit = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := CheckAppends(ctx, "b", []byte("ok")); !errors.Is(err, context.Canceled) {
		t.Fatalf("CheckAppends with a done context = %v", err)
	}
	if err := CheckAppends(context.Background(), "b", []byte("ok")); err != nil {
		t.Fatal(err)
	}
}
