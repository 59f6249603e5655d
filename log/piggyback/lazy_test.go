package piggyback

import (
	"context"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// lazyLog is a memlog that is a LazyAppender: it records the lazy appends
// and reports them shared when shared is set.
type lazyLog struct {
	*memlog.Log
	lazy        []time.Duration
	lazyBatches []int
	shared      bool
}

func (l *lazyLog) AppendLazy(ctx context.Context, data []byte, within time.Duration) (log.Position, bool, error) {
	l.lazy = append(l.lazy, within)
	p, err := l.Append(ctx, data)
	return p, l.shared, err
}

// TestAfterimageLazyWhileCommitting: on a LazyAppender, an afterimage
// appended while this node commits is a lazy append that may wait the
// window (at any number of commits under way); an idle node's is appended
// at once; intentions are plain appends; Piggybacked counts the lazy
// appends that shared a group.
func TestAfterimageLazyWhileCommitting(t *testing.T) {
	ctx := context.Background()
	l := &lazyLog{Log: memlog.New(nil), shared: true}
	p := newLane(t, l)
	if _, err := p.AppendAfterimage(ctx, []byte("idle")); err != nil {
		t.Fatal(err)
	}
	if len(l.lazy) != 0 {
		t.Fatalf("an idle node's afterimage went lazy (%v)", l.lazy)
	}
	for range 5 {
		defer p.CommitBegins()() // many commits under way
	}
	in, err := p.AppendIntention(ctx, []byte("intention"))
	if err != nil {
		t.Fatal(err)
	}
	ai, err := p.AppendAfterimage(ctx, []byte("afterimage"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.lazy) != 1 || l.lazy[0] != long || p.Piggybacked() != 1 {
		t.Fatalf("lazy appends %v, piggybacked %d; want one waiting the window, counted", l.lazy, p.Piggybacked())
	}
	for pos, want := range map[log.Position]string{in: "intention", ai: "afterimage"} {
		if got := read(t, l, pos); string(got) != want {
			t.Fatalf("read %d = %q, want %q", pos, got, want)
		}
	}
	l.shared = false
	if _, err := p.AppendAfterimage(ctx, []byte("alone")); err != nil {
		t.Fatal(err)
	}
	if len(l.lazy) != 2 || p.Piggybacked() != 1 {
		t.Fatalf("lazy appends %v, piggybacked %d; want a second lazy append, not counted", l.lazy, p.Piggybacked())
	}
}

func (l *lazyLog) AppendLazyBatch(ctx context.Context, data [][]byte, within time.Duration) ([]log.Position, bool, error) {
	l.lazyBatches = append(l.lazyBatches, len(data))
	pos, err := l.Log.AppendBatch(ctx, data)
	return pos, l.shared, err
}

// TestAfterimagesBatch: several afterimages appended together go in one
// lazy batch while this node commits (counted as riding when shared), in
// one plain batch when it is idle, and one alone as AppendAfterimage does.
func TestAfterimagesBatch(t *testing.T) {
	ctx := context.Background()
	l := &lazyLog{Log: memlog.New(nil), shared: true}
	p := newLane(t, l)
	data := [][]byte{[]byte("a1"), []byte("a2"), []byte("a3")}
	pos, err := p.AppendAfterimages(ctx, data)
	if err != nil || len(pos) != 3 {
		t.Fatalf("idle: %v, %v", pos, err)
	}
	if len(l.lazy)+len(l.lazyBatches) != 0 || p.Piggybacked() != 0 {
		t.Fatalf("an idle node's afterimages went lazy (%v, %v)", l.lazy, l.lazyBatches)
	}
	for range 5 {
		defer p.CommitBegins()()
	}
	if _, err := p.AppendIntention(ctx, []byte("intention")); err != nil {
		t.Fatal(err)
	}
	pos, err = p.AppendAfterimages(ctx, data)
	if err != nil || len(pos) != 3 {
		t.Fatalf("committing: %v, %v", pos, err)
	}
	if len(l.lazyBatches) != 1 || l.lazyBatches[0] != 3 || p.Piggybacked() != 3 {
		t.Fatalf("lazy batches %v, piggybacked %d; want one of 3, counted", l.lazyBatches, p.Piggybacked())
	}
	for i, q := range pos {
		if got := read(t, l, q); string(got) != string(data[i]) {
			t.Fatalf("read %d = %q, want %q", q, got, data[i])
		}
	}
	if _, err := p.AppendAfterimages(ctx, data[:1]); err != nil {
		t.Fatal(err)
	}
	if len(l.lazy) != 1 || len(l.lazyBatches) != 1 {
		t.Fatalf("one afterimage: lazy appends %v, lazy batches %v; want one lazy append", l.lazy, l.lazyBatches)
	}
}
