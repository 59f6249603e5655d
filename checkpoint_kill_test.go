package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

// TestKill9CheckpointChild is the child of TestKill9WhileCheckpointing: it
// commits from four goroutines (killChildWrites, over 3,000 keys rewritten
// again and again) while a fifth checkpoints without pause (and the
// automatic trigger fires often), until it is killed.
func TestKill9CheckpointChild(t *testing.T) {
	dir, start := killChild()
	if dir == "" {
		t.Skip("child of TestKill9WhileCheckpointing only")
	}
	db, err := Open(dir, &Options{CheckpointMinLogBytes: 32 << 10, CheckpointLogRatio: 1})
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(3)
	}
	go func() {
		for {
			db.Checkpoint(context.Background())
		}
	}()
	// Every eighth value is padded by 3,000 bytes: values left in intentions.
	killChildWrites(db, start, func(i int) string { return fmt.Sprintf("key%08d", i%3000) }, 3000)
}

// TestKill9WhileCheckpointing kills a real process, on the default embedded
// log, while it checkpoints and trims without pause, and checks after each
// restart that the newest acknowledged value of every key is there and
// that the log was trimmed.
func TestKill9WhileCheckpointing(t *testing.T) {
	dir := t.TempDir()
	killCycles(t, "TestKill9CheckpointChild", dir, 3, 1_000_000, func(cycle int, acked map[string]string, counter int) {
		db, err := Open(dir, &Options{CheckpointLogRatio: -1})
		if err != nil {
			t.Fatalf("cycle %d: reopen: %v", cycle, err)
		}
		err = db.View(context.Background(), func(tx *Txn) error {
			for k, v := range acked {
				got, err := tx.Get([]byte(k))
				if err != nil {
					return fmt.Errorf("acknowledged %s lost after kill -9: %v", k, err)
				}
				// The same key may have been written again, acknowledged
				// or not, by a later commit of the killed child: never an
				// older value than the newest acknowledged.
				if valueSeq(string(got)) < valueSeq(v) {
					return fmt.Errorf("%s = value-%d after kill -9, older than the acknowledged %s", k, valueSeq(string(got)), v)
				}
			}
			return nil
		})
		err = errors.Join(err, killCounterAtLeast(db, counter))
		_, terr := db.Log().Read(context.Background(), 1)
		sp := db.SafePoint()
		if cerr := db.Close(); cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if !errors.Is(terr, log.ErrTrimmed) {
			t.Fatalf("cycle %d: position 1 was not trimmed (%v)", cycle, terr)
		}
		t.Logf("cycle %d: %d keys intact; restarted from %d (checkpoint %v, tail %d)", cycle, len(acked), sp.Intention, sp.Marker != nil, sp.Tail)
	})
}
