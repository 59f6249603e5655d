package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// TestBackupRestore: a backup taken while transactions keep committing
// holds one consistent snapshot (x and y, incremented together in every
// transaction, are equal in it), and a database restored from it holds
// exactly the backed-up keys of every type.
func TestBackupRestore(t *testing.T) {
	s := testServer(t, func(c *config) { c.DataDir = t.TempDir() })
	c := client(t, s)
	ctx := ctxT(t)
	c.Set(ctx, "str", "value", 0)
	c.Set(ctx, "ttl", "v", time.Hour)
	c.HSet(ctx, "hash", "f1", "1", "f2", "2")
	c.SAdd(ctx, "set", "a", "b")
	c.MSet(ctx, "x", 0, "y", 0)

	// Writers that keep x == y in every committed state.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var incrs atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				_, err := c.TxPipelined(context.Background(), func(p redis.Pipeliner) error {
					p.Incr(context.Background(), "x")
					p.Incr(context.Background(), "y")
					return nil
				})
				if err != nil {
					return
				}
				incrs.Add(1)
			}
		}()
	}
	// Let the writers get going.
	testutil.Eventually(t, testutil.WaitLong, func() bool { return incrs.Load() >= 5 })
	file := filepath.Join(t.TempDir(), "db.backup")
	var out, errOut bytes.Buffer
	if code := run([]string{"backup", "--addr", s.AdminAddr().String(), "--out", file}, &out, &errOut); code != 0 {
		t.Fatalf("cruzd backup: exit %d: %s", code, errOut.String())
	}
	during := incrs.Load()
	stop.Store(true)
	wg.Wait()
	if !strings.Contains(out.String(), "backup of snapshot") {
		t.Fatalf("cruzd backup said %q", out.String())
	}
	t.Logf("%s(%d transactions committed before the backup ended, %d in all)", out.String(), during, incrs.Load())

	dir := t.TempDir()
	if code := run([]string{"restore", "--in", file, "--data-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("cruzd restore: exit %d: %s", code, errOut.String())
	}
	// Restoring over an existing database is refused.
	if code := run([]string{"restore", "--in", file, "--data-dir", dir}, &out, &errOut); code != 1 {
		t.Fatalf("restore over a database: exit %d", code)
	}
	r := testServer(t, func(cf *config) { cf.DataDir = dir })
	rc := client(t, r)
	if v := must[string](t, rc.Get(ctx, "str")); v != "value" {
		t.Fatalf("restored str = %q", v)
	}
	if d := must[time.Duration](t, rc.TTL(ctx, "ttl")); d <= 0 || d > time.Hour {
		t.Fatalf("restored TTL = %v", d)
	}
	if h := must[map[string]string](t, rc.HGetAll(ctx, "hash")); len(h) != 2 || h["f2"] != "2" {
		t.Fatalf("restored hash = %v", h)
	}
	if m := must[[]string](t, rc.SMembers(ctx, "set")); len(m) != 2 {
		t.Fatalf("restored set = %v", m)
	}
	x, y := must[string](t, rc.Get(ctx, "x")), must[string](t, rc.Get(ctx, "y"))
	if x != y {
		t.Fatalf("the backup is not one snapshot: x = %s, y = %s", x, y)
	}
	// Byte for byte: the restored database holds what the backup file
	// holds, and the file what the source held at its snapshot.
	pos, n, err := verifyBackup(file)
	if err != nil || n == 0 {
		t.Fatalf("backup file: %d records, %v", n, err)
	}
	var got int
	err = r.db.View(ctx, func(tx *cruzdb.Txn) error {
		got = 0 // View runs fn again after a peer's trim
		for range tx.Range(nil, nil) {
			got++
		}
		return tx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(got) != n {
		t.Fatalf("restored %d keys, the backup of snapshot %d holds %d", got, pos, n)
	}
	// A damaged file restores nothing.
	data, _ := os.ReadFile(file)
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, data[:len(data)-3], 0o644)
	if code := run([]string{"restore", "--in", bad, "--data-dir", t.TempDir()}, &out, &errOut); code != 1 {
		t.Fatalf("restore of a truncated backup: exit %d", code)
	}
}

// TestBackupWithPassword: a cruzd started with --requirepass serves /backup
// only to a caller that gives it, and cruzd backup takes it as a flag.
func TestBackupWithPassword(t *testing.T) {
	s := testServer(t, func(c *config) { c.DataDir = t.TempDir(); c.Security.RequirePass = "pw" })
	file := filepath.Join(t.TempDir(), "db.backup")
	var out, errOut bytes.Buffer
	if code := run([]string{"backup", "--addr", s.AdminAddr().String(), "--out", file}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "401") {
		t.Fatalf("backup without the password: exit %d, %q; want a 401 failure", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"backup", "--addr", s.AdminAddr().String(), "--requirepass", "pw", "--out", file}, &out, &errOut); code != 0 {
		t.Fatalf("backup with the password: exit %d: %s", code, errOut.String())
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatal(err)
	}
}
