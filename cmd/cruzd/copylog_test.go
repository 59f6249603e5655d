package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/log/seglog"
)

// TestCopyLogBetweenBackends moves a database from boltlog to seglog and
// back with the copylog subcommand; each copy opens as a database with
// every key, on the backend asked for.
func TestCopyLogBetweenBackends(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	bolt := filepath.Join(base, "bolt")
	os.MkdirAll(bolt, 0o755)
	if err := os.WriteFile(filepath.Join(bolt, cruzdb.LogFileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := cruzdb.Open(bolt, &cruzdb.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := db.Update(ctx, func(tx *cruzdb.Txn) error {
			return tx.Put(fmt.Appendf(nil, "k%03d", i), bytes.Repeat([]byte{byte(i)}, i*30))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(dir, backend string) {
		t.Helper()
		if got, err := cruzdb.EmbeddedLogBackend(dir); got != backend || err != nil {
			t.Fatalf("%s: backend %q (%v), want %q", dir, got, err, backend)
		}
		db, err := cruzdb.Open(dir, &cruzdb.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.View(ctx, func(tx *cruzdb.Txn) error {
			for i := range 200 {
				v, err := tx.Get(fmt.Appendf(nil, "k%03d", i))
				if err != nil || !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, i*30)) {
					return fmt.Errorf("k%03d: %d bytes, %v", i, len(v), err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
	}
	seg := filepath.Join(base, "seg")
	var out, errOut bytes.Buffer
	if code := run([]string{"copylog", "--from", bolt, "--to", seg}, &out, &errOut); code != 0 {
		t.Fatalf("copylog boltlog -> seglog: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "copied") {
		t.Fatalf("copylog said %q", out.String())
	}
	check(seg, cruzdb.BackendSeglog)
	back := filepath.Join(base, "back")
	if code := run([]string{"copylog", "--from", seg, "--to", back, "--backend", "boltlog"}, &out, &errOut); code != 0 {
		t.Fatalf("copylog seglog -> boltlog: exit %d: %s", code, errOut.String())
	}
	check(back, cruzdb.BackendBoltlog)

	// Refusals: a destination that holds a log, a source without one,
	// missing flags, an unknown backend.
	if code := run([]string{"copylog", "--from", bolt, "--to", seg}, &out, &errOut); code != 1 {
		t.Fatalf("copylog into a directory with a log: exit %d, want 1", code)
	}
	if code := run([]string{"copylog", "--from", filepath.Join(base, "none"), "--to", filepath.Join(base, "x")}, &out, &errOut); code != 1 {
		t.Fatalf("copylog from a directory without a log: exit %d, want 1", code)
	}
	if code := run([]string{"copylog", "--from", bolt}, &out, &errOut); code != 2 {
		t.Fatalf("copylog without --to: exit %d, want 2", code)
	}
	if code := run([]string{"copylog", "--from", bolt, "--to", filepath.Join(base, "y"), "--backend", "etcd"}, &out, &errOut); code != 2 {
		t.Fatalf("copylog --backend etcd: exit %d, want 2", code)
	}
}

// TestCopyPositions: a log with a trim point, junk below the tail and junk
// beyond it copies position for position.
func TestCopyPositions(t *testing.T) {
	ctx := context.Background()
	src := memlog.New(nil)
	for i := range 20 {
		if i == 12 {
			src.Fill(ctx, 12)
			continue
		}
		if _, err := src.Append(ctx, fmt.Appendf(nil, "e%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	src.Trim(ctx, 5)
	src.Fill(ctx, 25)
	dst, err := seglog.Open(t.TempDir(), &seglog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	n, err := copyPositions(ctx, src, dst)
	if err != nil || n != 20 {
		t.Fatalf("copyPositions = %d, %v", n, err)
	}
	for p, want := range map[log.Position]error{4: log.ErrTrimmed, 12: log.ErrFilled, 25: log.ErrFilled, 20: log.ErrNotWritten} {
		if _, err := dst.Read(ctx, p); !errors.Is(err, want) {
			t.Fatalf("copy Read(%d) = %v, want %v", p, err, want)
		}
	}
	if got, err := dst.Read(ctx, 13); err != nil || string(got) != "e13" {
		t.Fatalf("copy Read(13) = %q, %v", got, err)
	}
}
