package cruzdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestEmbeddedLogChoice: a new directory gets seglog, a directory with
// log.db keeps boltlog (and reopens with its data), one with both is
// refused.
func TestEmbeddedLogChoice(t *testing.T) {
	ctx := context.Background()
	fresh := t.TempDir()
	db, err := Open(fresh, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(fresh, SegLogDirName, "meta")); err != nil {
		t.Fatalf("a new database has no seglog: %v", err)
	}
	if _, err := os.Stat(filepath.Join(fresh, LogFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a new database made %s: %v", LogFileName, err)
	}

	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, LogFileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		db, err := Open(old, &Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			if err := db.Update(ctx, func(tx *Txn) error { return tx.Put([]byte("k"), []byte("v")) }); err != nil {
				t.Fatal(err)
			}
		} else if err := db.View(ctx, func(tx *Txn) error {
			v, err := tx.Get([]byte("k"))
			if err != nil || string(v) != "v" {
				return errors.Join(err, errors.New("lost"))
			}
			return nil
		}); err != nil {
			t.Fatalf("boltlog database after reopen: %v", err)
		}
		db.Close()
		if got, err := EmbeddedLogBackend(old); got != BackendBoltlog || err != nil {
			t.Fatalf("backend %q, %v; want boltlog", got, err)
		}
		if _, err := os.Stat(filepath.Join(old, SegLogDirName)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("opening a boltlog database made a seglog: %v", err)
		}
	}

	both := t.TempDir()
	os.WriteFile(filepath.Join(both, LogFileName), nil, 0o600)
	os.Mkdir(filepath.Join(both, SegLogDirName), 0o755)
	if _, err := Open(both, nil); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Open of a directory with both logs = %v, want ErrInvalidOptions", err)
	}
	if _, err := OpenLogBackend(t.TempDir(), "etcd", true); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("OpenLogBackend(etcd) = %v, want ErrInvalidOptions", err)
	}
}
