package processor_test

import (
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/processor"
)

// TestOrderedAppliesEarly: with Config.Early, the entries of a group handed
// to Ordered are applied before they are in the log, in order, with Early
// events and the decisions replay makes of them read back; once they are
// in the log they are not applied again, and later entries come as usual
// (not Early). A group of fewer than two intentions is not applied early
// unless they are large, and staging stops at the first entry that is neither an intention nor an
// afterimage (a checkpoint's, or bytes that are no entry). Without Early,
// Ordered does nothing.
func TestOrderedAppliesEarly(t *testing.T) {
	in := func(tok uint64, reads []string, k, v string) []byte {
		return entry.AppendIntention(nil, &intention.Intention{Snapshot: 0, Token: tok, Reads: keys(reads...), Ops: []intention.Op{put(k, v)}})
	}
	for _, early := range []bool{true, false} {
		l := newLog(t, nil)
		c := newCollector()
		r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, Early: early})
		g1 := [][]byte{in(11, nil, "a", "1"), in(12, []string{"a"}, "b", "x")} // 1 commits, 2 conflicts
		r.Ordered(1, g1)
		if early {
			for i, want := range []processor.Outcome{processor.Committed, processor.Conflict} {
				ev := c.next(t)
				if ev.Pos != uint64(i+1) || !ev.Early || ev.Decision == nil || ev.Decision.Outcome != want {
					t.Fatalf("early event %+v (decision %+v), want position %d, Early, %v", ev, ev.Decision, i+1, want)
				}
			}
		}
		c.none(t)
		for _, d := range g1 {
			appendData(t, l, d)
		}
		if !early {
			for i := range 2 {
				if ev := c.next(t); ev.Pos != uint64(i+1) || ev.Early {
					t.Fatalf("event %+v, want position %d read from the log", ev, i+1)
				}
			}
		}
		// An afterimage alone: not staged.
		ai := entry.AppendAfterimage(nil, leafAfterimage(1, "a"))
		r.Ordered(3, [][]byte{ai})
		c.none(t)
		appendData(t, l, ai)
		if ev := c.next(t); ev.Pos != 3 || ev.Early || ev.Afterimage == nil {
			t.Fatalf("event %+v, want the afterimage at 3 read from the log", ev)
		}
		// Staging stops at bytes that are no entry: 6 and 7 wait for the log.
		g2 := [][]byte{in(14, nil, "c", "1"), in(15, nil, "d", "1"), []byte("no entry"), in(17, nil, "e", "1")}
		r.Ordered(4, g2)
		from := uint64(4)
		if early {
			for p := uint64(4); p <= 5; p++ {
				if ev := c.next(t); ev.Pos != p || !ev.Early {
					t.Fatalf("event %+v, want position %d applied early", ev, p)
				}
			}
			from = 6
		}
		c.none(t)
		appendData(t, l, g2[0])
		appendData(t, l, g2[1])
		appendData(t, l, entry.Encode(nil, entry.TypeCheckpoint, []byte{entry.CheckpointChunk, 0}))
		appendData(t, l, g2[3])
		for p := from; p <= 7; p++ {
			if ev := c.next(t); ev.Pos != p || ev.Early {
				t.Fatalf("event %+v, want position %d read from the log", ev, p)
			}
		}
		// One small intention alone: not staged (its committer applies it).
		g3 := [][]byte{in(18, nil, "f", "1")}
		r.Ordered(8, g3)
		c.none(t)
		appendData(t, l, g3[0])
		if ev := c.next(t); ev.Pos != 8 || ev.Early {
			t.Fatalf("event %+v, want position 8 read from the log", ev)
		}
		// One large intention alone: staged.
		g4 := [][]byte{in(19, nil, "g", strings.Repeat("v", 5000))}
		r.Ordered(9, g4)
		if early {
			if ev := c.next(t); ev.Pos != 9 || !ev.Early {
				t.Fatalf("event %+v, want position 9 applied early", ev)
			}
		}
		c.none(t)
		appendData(t, l, g4[0])
		if !early {
			if ev := c.next(t); ev.Pos != 9 || ev.Early {
				t.Fatalf("event %+v, want position 9 read from the log", ev)
			}
		}
		c.none(t)
		if want := map[bool]uint64{true: 5, false: 0}[early]; r.EarlyApplies() != want {
			t.Fatalf("EarlyApplies %d, want %d", r.EarlyApplies(), want)
		}
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}
