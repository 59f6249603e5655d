package cruzdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/seglog"
)

// TestCorruptAfterimageReportedOnLoad: replay decodes a large afterimage's
// header from its first bytes on seglog (which checks what it reads), so
// the rest of the afterimage is checked only when its nodes are loaded. A
// byte flipped there in the segment file is then reported as corruption
// (log.ErrCorrupt) by the read that loads the node, never returned as data:
// by seglog's record checksum if this is the record's first read from the
// file, else by the node's own checksum (seglog checks a large record whole
// once); with and without nodes of that afterimage loaded before.
func TestCorruptAfterimageReportedOnLoad(t *testing.T) {
	for _, loadedBefore := range []bool{false, true} {
		t.Run(fmt.Sprintf("loaded-before=%v", loadedBefore), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), SegLogDirName)
			sl, err := seglog.Open(dir, &seglog.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer sl.Close()
			db, err := Open("", &Options{Log: sl, CheckpointLogRatio: -1, CacheBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			value := func(i int) []byte { return fmt.Appendf(nil, "value-%04d-%s", i, bytes.Repeat([]byte{'x'}, 90)) }
			key := func(i int) []byte { return fmt.Appendf(nil, "big-%04d", i) }
			const n = 2000
			if err := db.Update(ctx, func(tx *Txn) error {
				for i := range n {
					if err := tx.Put(key(i), value(i)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := db.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			// The flusher counts an afterimage after its append returns, and
			// replay may confirm it (ending Flush) before that.
			if !testutil.Poll(30*time.Second, func() bool { return db.Stats().AfterimageBytes >= 200<<10 }) {
				t.Fatalf("afterimage of %d bytes; the test needs one well over replay's 64 KiB prefix", db.Stats().AfterimageBytes)
			}
			// More than seglog keeps in memory of its recent groups, so
			// that the big afterimage is read from the file from now on.
			pad := bytes.Repeat([]byte{'p'}, 512<<10)
			start := sl.Stats().Bytes
			for i := 0; sl.Stats().Bytes-start < 6<<20; i++ {
				if err := db.Update(ctx, func(tx *Txn) error { return tx.Put(fmt.Appendf(nil, "pad-%03d", i), pad) }); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if loadedBefore {
				misses := db.Stats().CacheMisses
				if err := db.View(ctx, func(tx *Txn) error {
					v, err := tx.Get(key(100))
					if err == nil && !bytes.Equal(v, value(100)) {
						err = fmt.Errorf("got %q", v)
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if db.Stats().CacheMisses == misses {
					t.Fatal("the read was served from memory: the test needs nodes loaded from the log")
				}
			}
			// Flip a byte of the last copy of a value in the segment
			// files: the big afterimage's (the intention's copy comes
			// before it, the pad entries hold no such bytes).
			victim := n - 100
			segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
			if err != nil || len(segs) == 0 {
				t.Fatalf("segments %v, %v", segs, err)
			}
			flipped := false
			for _, path := range segs {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				at := bytes.LastIndex(data, value(victim))
				if at < 0 || bytes.Index(data, value(victim)) == at {
					continue // not there, or only the intention's copy
				}
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt([]byte{data[at+20] ^ 0x01}, int64(at+20)); err != nil {
					t.Fatal(err)
				}
				f.Close()
				flipped = true
			}
			if !flipped {
				t.Fatal("the afterimage's copy of the value was not found in the segment files")
			}
			var got []byte
			err = db.View(ctx, func(tx *Txn) error {
				var err error
				got, err = tx.Get(key(victim))
				return err
			})
			if !errors.Is(err, log.ErrCorrupt) {
				t.Fatalf("Get of a key whose node was corrupted: value %q, err %v; want an error wrapping log.ErrCorrupt", got, err)
			}
			t.Logf("reported: %v", err)
		})
	}
}
