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
	lazy   []time.Duration
	shared bool
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
