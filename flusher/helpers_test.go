package flusher

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/internal/testutil/fixture"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

// waitLong bounds every wait for something that must happen; tests never
// assert that something happens quickly.
const waitLong = testutil.WaitLong

var testHeader = fixture.Header(1<<20, 256, 1<<20)

func putOp(k, v string) intention.Op {
	return intention.Op{Kind: intention.OpPut, Key: []byte(k), Value: []byte(v)}
}

func delOp(k string) intention.Op { return intention.Op{Kind: intention.OpDelete, Key: []byte(k)} }

// newLog returns a memlog holding the header at position 0.
func newLog(t *testing.T, o *memlog.Options) *memlog.Log {
	t.Helper()
	return fixture.NewLog(t, o, testHeader)
}

var (
	appendData      = fixture.Append
	appendIntention = fixture.AppendIntention
)

func appendAfterimage(t *testing.T, l log.Log, ai *afterimage.Afterimage) uint64 {
	t.Helper()
	if err := ai.Validate(); err != nil {
		t.Fatal(err)
	}
	return appendData(t, l, entry.AppendAfterimage(nil, ai))
}

// hole takes a position whose writer dies, and returns it.
func hole(t *testing.T, l *memlog.Log) uint64 {
	t.Helper()
	return uint64(fixture.Hole(t, l))
}

func leaf(key, val string, pos uint64) afterimage.Node {
	return afterimage.Node{Key: []byte(key), Value: []byte(val), Pos: pos, MaxPos: pos, MinTomb: afterimage.NoTombstone, Height: 1}
}

func readAfterimage(t *testing.T, l log.Log, pos uint64) *afterimage.Afterimage {
	t.Helper()
	data, err := l.Read(context.Background(), log.Position(pos))
	if err != nil {
		t.Fatal(err)
	}
	ai, err := entry.DecodeAfterimageEntry(pos, data)
	if err != nil {
		t.Fatal(err)
	}
	return ai
}

// afterimagesIn returns every afterimage in l, by position.
func afterimagesIn(t *testing.T, l log.Log) map[uint64]*afterimage.Afterimage {
	t.Helper()
	ctx := context.Background()
	tail, err := l.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]*afterimage.Afterimage{}
	for p := log.Position(1); p < tail; p++ {
		data, err := l.Read(ctx, p)
		if err != nil {
			continue
		}
		if typ, _, err := entry.Decode(uint64(p), data); err != nil || typ != entry.TypeAfterimage {
			continue
		}
		out[uint64(p)] = readAfterimage(t, l, uint64(p))
	}
	return out
}

// treeDump lists the live entries of tr, loading what is not in memory.
func treeDump(t *testing.T, tr cowtree.Tree) string {
	t.Helper()
	var b bytes.Buffer
	it := tr.Ascend(nil)
	for it.Next() {
		fmt.Fprintf(&b, "%s=%s ", it.Key(), it.Value())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// mustApply applies in at pos to st and fails unless it commits.
func mustApply(t *testing.T, st *processor.State, pos uint64, in *intention.Intention) *processor.Delta {
	t.Helper()
	d, delta, err := st.Apply(pos, in)
	if err != nil {
		t.Fatal(err)
	}
	if d.Outcome != processor.Committed {
		t.Fatalf("position %d: %v", pos, d.Outcome)
	}
	return delta
}

// residentNodes returns the nodes of tr reachable in memory from its root,
// without loading anything.
func residentNodes(tr cowtree.Tree) map[*cowtree.Node]bool {
	out := map[*cowtree.Node]bool{}
	var walk func(n *cowtree.Node)
	walk = func(n *cowtree.Node) {
		if n == nil {
			return
		}
		out[n] = true
		walk(n.Left().Node())
		walk(n.Right().Node())
	}
	walk(tr.Root().Node())
	return out
}

// within returns what a call running in the background returned on ch.
func within(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	return testutil.Receive(t, what, ch)
}

// blocked checks that a call running in the background has not returned
// on ch once waiting reports that it looked and went to wait (a signal of
// the flusher's, not a time window).
func blocked(t *testing.T, what string, ch <-chan error, waiting func() bool) {
	t.Helper()
	testutil.Eventually(t, waitLong, func() bool { return waiting() || len(ch) > 0 })
	select {
	case err := <-ch:
		t.Fatalf("%s returned early: %v", what, err)
	default:
	}
}

// appendLeafAfterimages appends count afterimages of nodes leaves each (for
// intentions 1..count; leaf j of afterimage i has key fmt.Sprintf(keyf, i,
// j) and value v) and returns their positions.
func appendLeafAfterimages(t *testing.T, l log.Log, count, nodes int, keyf, v string) []uint64 {
	t.Helper()
	var afters []uint64
	for i := range count {
		ai := &afterimage.Afterimage{Intention: uint64(i + 1), Base: uint64(i + 1)}
		for j := range nodes {
			ai.Nodes = append(ai.Nodes, leaf(fmt.Sprintf(keyf, i, j), v, uint64(i+1)))
		}
		afters = append(afters, appendAfterimage(t, l, ai))
	}
	return afters
}
