package processor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

// rangeLog counts the bytes read of each position, by Read and ReadRange,
// and says that it checks its reads when checked is set.
type rangeLog struct {
	*memlog.Log
	checked bool
	mu      sync.Mutex
	read    map[log.Position]int
}

func (l *rangeLog) count(pos log.Position, n int) {
	l.mu.Lock()
	l.read[pos] += n
	l.mu.Unlock()
}

func (l *rangeLog) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	data, err := l.Log.Read(ctx, pos)
	l.count(pos, len(data))
	return data, err
}

func (l *rangeLog) ReadRange(ctx context.Context, pos log.Position, off, n int) ([]byte, int, error) {
	data, size, err := l.Log.ReadRange(ctx, pos, off, n)
	l.count(pos, len(data))
	return data, size, err
}

func (l *rangeLog) ChecksReads() bool { return l.checked }

func (l *rangeLog) bytesRead(pos log.Position) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.read[pos]
}

// bigAfterimage is the afterimage entry of intention in with enough nodes
// to be several times replay's first read.
func bigAfterimage(in uint64) []byte {
	a := &afterimage.Afterimage{Intention: in, Base: in}
	for i := range 2000 {
		a.Nodes = append(a.Nodes, afterimage.Node{Key: fmt.Appendf(nil, "key-%05d", i), Value: bytes.Repeat([]byte{'v'}, 100),
			Pos: in, MaxPos: in, MinTomb: afterimage.NoTombstone, Height: 1})
	}
	return entry.AppendAfterimage(nil, a)
}

// TestRunnerAfterimageHeaderFromPrefix: on a log that checks its reads,
// replay decodes a large afterimage's header from its first bytes and
// reads no more of it; on a log that does not, it reads the rest and checks
// the envelope, so a flipped byte beyond the prefix stops replay as
// corruption.
func TestRunnerAfterimageHeaderFromPrefix(t *testing.T) {
	ai := bigAfterimage(1)
	if len(ai) < 3*processor.ReplayPrefix {
		t.Fatalf("afterimage of %d bytes: too small for the test", len(ai))
	}
	for _, checked := range []bool{true, false} {
		t.Run(fmt.Sprintf("checked=%v", checked), func(t *testing.T) {
			l := &rangeLog{Log: newLog(t, nil), checked: checked, read: map[log.Position]int{}}
			appendIn(t, l, &intention.Intention{Snapshot: 0, Token: 5, Ops: []intention.Op{put("a", "1")}}) // 1
			appendData(t, l, ai)                                                                            // 2
			appendIn(t, l, &intention.Intention{Snapshot: 1, Token: 6, Ops: []intention.Op{put("b", "1")}}) // 3
			c := newCollector()
			r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
			c.next(t)
			ev := c.next(t)
			if ev.Pos != 2 || ev.Type != entry.TypeAfterimage || ev.Afterimage == nil || ev.Size != len(ai) ||
				*ev.Afterimage != (processor.AfterimageHeader{Intention: 1, Base: 1, Nodes: 2000}) {
				t.Fatalf("afterimage event %+v (header %+v), want intention 1, base 1, 2000 nodes, %d bytes", ev, ev.Afterimage, len(ai))
			}
			c.nextCommitted(t, 3)
			if err := r.Stop(); err != nil {
				t.Fatal(err)
			}
			got, want := l.bytesRead(2), len(ai)
			if checked {
				want = processor.ReplayPrefix
			}
			if got != want {
				t.Fatalf("read %d bytes of the afterimage, want %d", got, want)
			}
		})
	}
	t.Run("unchecked log, flipped byte beyond the prefix", func(t *testing.T) {
		bad := bytes.Clone(ai)
		bad[len(bad)-1000] ^= 0x10
		l := &rangeLog{Log: newLog(t, nil), read: map[log.Position]int{}}
		appendIn(t, l, &intention.Intention{Snapshot: 0, Token: 5, Ops: []intention.Op{put("a", "1")}}) // 1
		appendData(t, l, bad)                                                                           // 2
		c := newCollector()
		r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, HoleTimeout: 10 * time.Millisecond})
		c.next(t)
		waitDone(t, r)
		var ce *entry.CorruptError
		if err := r.Err(); !errors.Is(err, entry.ErrCorrupt) || !errors.As(err, &ce) || ce.Pos != 2 {
			t.Fatalf("err %v, want corruption at 2", err)
		}
		c.none(t)
	})
}
