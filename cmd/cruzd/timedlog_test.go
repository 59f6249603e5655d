package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/boltlog"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// The metrics wrapper keeps the log's optional abilities, which the engine
// looks for: the flusher batches afterimages with intentions only on a
// log.BatchAppender, and the pager reads one node of a large afterimage
// only through a log.RangeReader.
func TestTimedLogKeepsAbilities(t *testing.T) {
	m := newMetrics(&server{})
	bl, err := boltlog.Open(filepath.Join(t.TempDir(), "log"), &boltlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bl.Close()
	ctx := context.Background()
	for name, l := range map[string]log.Log{"memlog": memlog.New(nil), "boltlog": bl} {
		w := wrapTimed(l, m)
		ba, ok := w.(log.BatchAppender)
		if !ok {
			t.Fatalf("%s: wrapped log is no BatchAppender", name)
		}
		rr, ok := w.(log.RangeReader)
		if !ok {
			t.Fatalf("%s: wrapped log is no RangeReader", name)
		}
		data := bytes.Repeat([]byte("0123456789"), 1000)
		pos, err := ba.AppendBatch(ctx, [][]byte{data})
		if err != nil {
			t.Fatal(err)
		}
		got, size, err := rr.ReadRange(ctx, pos[0], 5000, 7)
		if err != nil || size != len(data) || string(got) != "0123456" {
			t.Fatalf("%s: ReadRange = %q, %d, %v", name, got, size, err)
		}
	}
	plain := wrapTimed(struct{ log.Log }{memlog.New(nil)}, m)
	if _, ok := plain.(log.RangeReader); ok {
		t.Fatal("a log without range reads gained them")
	}
}
