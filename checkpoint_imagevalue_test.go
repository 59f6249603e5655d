package cruzdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// imageValueNodes counts the afterimage nodes in l at or above from that
// say their value is a node of a checkpoint's image, and of those the ones
// that do not store the value themselves.
func imageValueNodes(t *testing.T, l log.Log, from log.Position) (named, away int) {
	t.Helper()
	ctx := context.Background()
	tail, err := l.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for p := from; p < tail; p++ {
		data, err := l.Read(ctx, p)
		if err != nil {
			t.Fatalf("read %d: %v", p, err)
		}
		typ, payload, err := entry.Decode(uint64(p), data)
		if err != nil || typ != entry.TypeAfterimage {
			continue
		}
		ai, err := afterimage.Decode(payload)
		if err != nil {
			t.Fatalf("afterimage at %d: %v", p, err)
		}
		for _, nd := range ai.Nodes {
			if nd.ValueCut != 0 {
				named++
				if nd.Value == nil {
					away++
				}
			}
		}
	}
	return named, away
}

// After a checkpoint, path copies of nodes written before the cut point at
// their values in the cut's image instead of storing them again, and those
// values read back right once the log below the cut is gone: through a
// reopen (every node loaded from the log) and through a node cache too small
// to keep the tree.
func TestValuesInTheImageAfterTrim(t *testing.T) {
	ctx := context.Background()
	l := memlog.New(nil)
	opts := noAuto(l)
	opts.CacheBytes = 32 << 10
	db, err := Open("", opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	put := func(db *DB, from, to int, round int) {
		t.Helper()
		err := db.Update(ctx, func(tx *Txn) error {
			for i := from; i < to; i++ {
				k, v := fmt.Sprintf("key%05d", i), fmt.Sprintf("value %d of round %d %s", i, round, bytes.Repeat([]byte{'x'}, 60))
				if err := tx.Put([]byte(k), []byte(v)); err != nil {
					return err
				}
				want[k] = v
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3000; i += 500 {
		put(db, i, i+500, 0)
	}
	info, err := db.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.TrimmedBelow == 0 {
		t.Fatalf("checkpoint trimmed nothing: %+v", info)
	}
	for i := 0; i < 3000; i += 97 { // one key a commit: path copies of old nodes
		put(db, i, i+1, 1)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	named, away := imageValueNodes(t, l, log.Position(info.Position)+1)
	if named == 0 || away == 0 {
		t.Fatalf("afterimages after the cut name %d image values, %d not stored: want both > 0", named, away)
	}
	check := func(db *DB, when string) {
		t.Helper()
		err := db.View(ctx, func(tx *Txn) error {
			for k, v := range want {
				got, err := tx.Get([]byte(k))
				if err != nil {
					return fmt.Errorf("get %s: %w", k, err)
				}
				if string(got) != v {
					return fmt.Errorf("get %s: %q, want %q", k, got, v)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	check(db, "before reopen")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open("", opts); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(db, "after reopen")
	for i := 0; i < 3000; i += 89 {
		put(db, i, i+1, 2)
	}
	check(db, "after more commits")
}

// rewrittenLog serves other bytes for one position.
type rewrittenLog struct {
	log.Log
	pos  log.Position
	data []byte
}

func (l *rewrittenLog) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	if pos == l.pos {
		return bytes.Clone(l.data), nil
	}
	return l.Log.Read(ctx, pos)
}

// An afterimage that names the wrong node of the image for a value (well
// formed, checksums right) is reported as corruption when the node is
// loaded, never read as the other node's value.
func TestWrongImageValueIsCorrupt(t *testing.T) {
	ctx := context.Background()
	l := memlog.New(nil)
	opts := noAuto(l)
	db, err := Open("", opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i += 500 {
		err := db.Update(ctx, func(tx *Txn) error {
			for k := i; k < i+500; k++ {
				if err := tx.Put(fmt.Appendf(nil, "key%05d", k), fmt.Appendf(nil, "value %d", k)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx *Txn) error { return tx.Put([]byte("key00777"), []byte("new")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The newest afterimage is the root's path: some of its nodes take
	// their values from the image. Point one at its neighbour's node, in
	// the active afterimage of its intention (the first after it: the
	// flusher may have written a later duplicate, which nothing reads).
	tail, err := l.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	readAfterimage := func(p log.Position) *afterimage.Afterimage {
		data, err := l.Read(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		typ, payload, err := entry.Decode(uint64(p), data)
		if err != nil || typ != entry.TypeAfterimage {
			return nil
		}
		ai, err := afterimage.Decode(payload)
		if err != nil {
			t.Fatal(err)
		}
		return ai
	}
	var bad *rewrittenLog
	var victim []byte
	for p := tail - 1; p > 0 && bad == nil; p-- {
		ai := readAfterimage(p)
		if ai == nil {
			continue
		}
		for q := log.Position(ai.Intention) + 1; q < p; q++ {
			if first := readAfterimage(q); first != nil && first.Intention == ai.Intention {
				p, ai = q, first
				break
			}
		}
		for i := range ai.Nodes {
			if nd := &ai.Nodes[i]; nd.ValueCut != 0 && nd.Value == nil {
				nd.ValueNum ^= 1
				victim = nd.Key
				bad = &rewrittenLog{Log: l, pos: p, data: entry.AppendAfterimage(nil, ai)}
				break
			}
		}
	}
	if bad == nil {
		t.Fatal("no afterimage takes a value from the image")
	}
	opts.Log = bad
	db, err = Open("", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []byte
	err = db.View(ctx, func(tx *Txn) error {
		var err error
		got, err = tx.Get(victim)
		return err
	})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("get %q through the wrong image node: %q, %v; want an error wrapping ErrCorrupt", victim, got, err)
	}
}
