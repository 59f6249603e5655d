package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/backup"
)

// Online backup and restore.
//
// GET /backup on the admin server streams every key and value of one
// snapshot (internal/backup's format): a read-only transaction, which never
// blocks commits, so writes go on while the copy is made and none of those
// after its snapshot is in it. `cruzd backup` saves that stream to a file
// (written to FILE.partial and renamed once whole); `cruzd restore` loads a
// file into a new database directory.

// serveBackup is the admin server's /backup handler.
func (s *server) serveBackup(w http.ResponseWriter, r *http.Request) {
	if s.db == nil || s.shutting.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	tx, err := s.db.Begin(r.Context(), false)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer tx.Rollback()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Cruzdb-Snapshot", fmt.Sprint(uint64(tx.Snapshot())))
	bw := backup.NewWriter(w, uint64(tx.Snapshot()))
	n := 0
	for k, v := range tx.Range(nil, nil) {
		if err := bw.Add(k, v); err != nil {
			s.logger.Warn("backup stopped", "err", err, "records", n)
			return // the client sees a truncated stream, which restore refuses
		}
		n++
	}
	if err := tx.Err(); err != nil {
		s.logger.Warn("backup stopped", "err", err, "records", n)
		return
	}
	if err := bw.Close(); err != nil {
		s.logger.Warn("backup stopped", "err", err, "records", n)
		return
	}
	s.logger.Info("backup served", "snapshot", uint64(tx.Snapshot()), "records", n)
}

func runBackup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cruzd backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7380", "`host:port` of the running cruzd's admin server (--admin-addr)")
	out := fs.String("out", "", "backup `file` to write (required)")
	pass := fs.String("requirepass", "", "the running cruzd's --requirepass `password` (set it through CRUZD_REQUIREPASS to keep it out of process listings)")
	timeout := fs.Duration("timeout", time.Hour, "give up after this long")
	fs.Usage = func() {
		usage(fs, stderr, "Usage: cruzd backup --addr ADMIN_ADDR --out FILE\n\nCopies one consistent snapshot of a running cruzd (every key of one log\nposition) to FILE while it keeps serving writes. Restore with cruzd restore.")
	}
	if code, ok := parseArgs(fs, args, stderr, "cruzd backup"); !ok {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "cruzd backup: --out is required")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	pos, n, err := fetchBackup(ctx, "http://"+*addr+"/backup", *pass, *out)
	if err != nil {
		fmt.Fprintln(stderr, "cruzd backup:", err)
		return 1
	}
	fmt.Fprintf(stdout, "backup of snapshot %d: %d keys in %s\n", pos, n, *out)
	return 0
}

// fetchBackup saves the backup at url to path, checking it whole before
// renaming it into place.
func fetchBackup(ctx context.Context, url, pass, path string) (pos, n uint64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	if pass != "" {
		req.SetBasicAuth("default", pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return 0, 0, fmt.Errorf("%s: %s: %s", url, resp.Status, msg)
	}
	tmp := path + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(tmp)
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return 0, 0, fmt.Errorf("receive backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, 0, err
	}
	if err := f.Close(); err != nil {
		return 0, 0, err
	}
	pos, n, err = verifyBackup(tmp)
	if err != nil {
		return 0, 0, err
	}
	return pos, n, os.Rename(tmp, path)
}

// verifyBackup reads a backup file through and returns its snapshot
// position and record count.
func verifyBackup(path string) (uint64, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	r, err := backup.NewReader(f)
	if err != nil {
		return 0, 0, err
	}
	for r.Next() {
	}
	return r.Position(), r.Count(), r.Err()
}

func runRestore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cruzd restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "backup `file` to read (required)")
	dir := fs.String("data-dir", "", "new database `directory` to create (required; must hold no log)")
	fs.Usage = func() {
		usage(fs, stderr, "Usage: cruzd restore --in FILE --data-dir DIR\n\nCreates a database in DIR holding exactly the keys of a backup made by\ncruzd backup. DIR must not hold a database already.")
	}
	if code, ok := parseArgs(fs, args, stderr, "cruzd restore"); !ok {
		return code
	}
	if *in == "" || *dir == "" {
		fmt.Fprintln(stderr, "cruzd restore: --in and --data-dir are required")
		return 2
	}
	n, err := restore(*in, *dir)
	if err != nil {
		fmt.Fprintln(stderr, "cruzd restore:", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored %d keys into %s\n", n, *dir)
	return 0
}

var errNotEmpty = errors.New("already holds a database")

// restoreBatch bounds the bytes of one restore transaction, well under an
// intention's 16 MiB.
const restoreBatch = 4 << 20

// restore checks the backup whole first (a damaged file writes nothing),
// then loads it into a new database in dir.
func restore(in, dir string) (uint64, error) {
	if _, _, err := verifyBackup(in); err != nil {
		return 0, err
	}
	for _, name := range []string{cruzdb.LogFileName, cruzdb.SegLogDirName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return 0, fmt.Errorf("%s: %w", dir, errNotEmpty)
		}
	}
	f, err := os.Open(in)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := backup.NewReader(f)
	if err != nil {
		return 0, err
	}
	db, err := cruzdb.Open(dir, nil)
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	tx, err := db.Begin(ctx, true)
	size := 0
	for err == nil && r.Next() {
		if err = tx.Put(r.Key(), r.Value()); err != nil {
			break
		}
		if size += len(r.Key()) + len(r.Value()); size >= restoreBatch {
			if err = tx.Commit(); err == nil {
				tx, err = db.Begin(ctx, true)
			}
			size = 0
		}
	}
	if err == nil {
		err = r.Err()
	}
	if err == nil {
		err = tx.Commit()
	} else if tx != nil {
		tx.Rollback()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return r.Count(), err
}
