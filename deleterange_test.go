package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestDeleteRange: one intention with one op removes every key of a range,
// and a transaction that read one of them before it conflicts.
func TestDeleteRange(t *testing.T) {
	ctx := context.Background()
	ml := memlog.New(nil)
	defer ml.Close()
	db, err := Open("", &Options{Log: ml})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(ctx, func(tx *Txn) error {
		for i := range 1000 {
			if err := tx.Put([]byte(fmt.Sprintf("k%04d", i)), []byte("v")); err != nil {
				return err
			}
		}
		return tx.Put([]byte("z"), []byte("outside"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// A reader of one key in the range, whose commit lands after the
	// range delete.
	reader, err := db.Begin(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Get([]byte("k0500")); err != nil {
		t.Fatal(err)
	}
	reader.Put([]byte("other"), []byte("x"))

	tail0, _ := ml.Tail(ctx)
	if err := db.DeleteRange(ctx, []byte("k"), []byte("l")); err != nil {
		t.Fatal(err)
	}
	tail1, _ := ml.Tail(ctx)
	intentions := 0
	for p := tail0; p < tail1; p++ {
		data, err := ml.Read(ctx, p)
		if err != nil {
			continue
		}
		if typ, _, err := entry.Decode(uint64(p), data); err == nil && typ == entry.TypeIntention {
			in, err := entry.DecodeIntentionEntry(uint64(p), data)
			if err != nil {
				t.Fatal(err)
			}
			intentions++
			if len(in.Ops) != 1 || in.Ops[0].Kind != intention.OpDeleteRange {
				t.Fatalf("the range delete's intention has ops %v", in.Ops)
			}
		}
	}
	if intentions != 1 {
		t.Fatalf("DeleteRange appended %d intentions, want 1", intentions)
	}
	err = db.View(ctx, func(tx *Txn) error {
		n := 0
		for range tx.Keys(nil, nil) {
			n++
		}
		if n != 1 {
			return fmt.Errorf("%d keys left, want 1 (z)", n)
		}
		return tx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := reader.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("a transaction that read a key the range delete removed committed: %v", err)
	}
}
