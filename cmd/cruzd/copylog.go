package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log"
)

// openExistingLog opens the embedded log of the data directory dir, as
// serve would, but refuses to create one: it reports an error if dir holds
// no log. It returns the log and its backend.
func openExistingLog(dir string) (log.Log, string, error) {
	backend, err := cruzdb.EmbeddedLogBackend(dir)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, cruzdb.LogFileName)
	if backend == cruzdb.BackendSeglog {
		path = filepath.Join(dir, cruzdb.SegLogDirName, "meta")
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		if err == nil {
			err = errors.New("empty file")
		}
		return nil, "", fmt.Errorf("no log at %s: %w", path, err)
	}
	l, err := cruzdb.OpenLogBackend(dir, backend, false)
	if err != nil {
		return nil, "", err
	}
	return l, backend, nil
}

func runCopyLog(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cruzd copylog", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "data `directory` whose log to copy (its backend as serve would open it)")
	to := fs.String("to", "", "new data `directory` to create the copy in (must hold no log)")
	backend := fs.String("backend", cruzdb.BackendSeglog, "`backend` of the copy: seglog or boltlog")
	fs.Usage = func() {
		usage(fs, stderr, "Usage: cruzd copylog --from DIR --to DIR [--backend seglog|boltlog]\n\nCopies the log of the database in --from, position by position (data, junk, the trim\npoint), into a new log of --backend in --to, then reads both back and compares them.\nStop cruzd first. Then start cruzd with --data-dir set to --to; --from is left as it was.")
	}
	if code, ok := parseArgs(fs, args, stderr, "cruzd copylog"); !ok {
		return code
	}
	if *from == "" || *to == "" {
		fmt.Fprintln(stderr, "cruzd copylog: --from and --to are required")
		return 2
	}
	if *backend != cruzdb.BackendSeglog && *backend != cruzdb.BackendBoltlog {
		fmt.Fprintf(stderr, "cruzd copylog: --backend %q: want seglog or boltlog\n", *backend)
		return 2
	}
	n, err := copyLog(context.Background(), *from, *to, *backend)
	if err != nil {
		fmt.Fprintln(stderr, "cruzd copylog:", err)
		return 1
	}
	fmt.Fprintf(stdout, "copied %d positions from %s to %s (%s)\n", n, *from, *to, *backend)
	return 0
}

// copyLog copies the log of data directory from into a new log of backend
// in data directory to, and returns the number of positions copied.
func copyLog(ctx context.Context, from, to, backend string) (uint64, error) {
	src, _, err := openExistingLog(from)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	if err := os.MkdirAll(to, 0o755); err != nil {
		return 0, err
	}
	for _, name := range []string{cruzdb.LogFileName, cruzdb.SegLogDirName} {
		if _, err := os.Stat(filepath.Join(to, name)); err == nil {
			return 0, fmt.Errorf("%s already holds a log (%s)", to, name)
		}
	}
	dst, err := cruzdb.OpenLogBackend(to, backend, false)
	if err != nil {
		return 0, err
	}
	n, err := copyPositions(ctx, src, dst)
	if cerr := dst.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		// Leave nothing half-copied that serve would open.
		_ = os.RemoveAll(filepath.Join(to, cruzdb.SegLogDirName))
		_ = os.Remove(filepath.Join(to, cruzdb.LogFileName))
		return 0, err
	}
	return n, nil
}

// copyFillWindow is how far beyond the tail copyPositions looks for junk
// (fills ahead of the tail, which no Read below the tail shows).
const copyFillWindow = 4096

// copyPositions copies src into the empty log dst so that every position
// reads the same: the trim point first (positions below it are never
// assigned), then data by appends (checked to land at the same position)
// and junk by fills, then fills ahead of the tail. It then reads both logs
// back and compares them.
func copyPositions(ctx context.Context, src, dst log.Log) (uint64, error) {
	tail, err := src.Tail(ctx)
	if err != nil {
		return 0, err
	}
	// The first position not trimmed.
	trim := log.Position(0)
	for trim < tail {
		if _, err := src.Read(ctx, trim); !errors.Is(err, log.ErrTrimmed) {
			break
		}
		trim++
	}
	if trim > 0 {
		if err := dst.Trim(ctx, trim); err != nil {
			return 0, err
		}
	}
	ba, _ := dst.(log.BatchAppender)
	var batch [][]byte
	var batchAt log.Position
	batchBytes := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var ps []log.Position
		if ba != nil {
			ps, err = ba.AppendBatch(ctx, batch)
		} else {
			for _, d := range batch {
				var p log.Position
				if p, err = dst.Append(ctx, d); err != nil {
					break
				}
				ps = append(ps, p)
			}
		}
		if err != nil {
			return fmt.Errorf("append at %d: %w", batchAt, err)
		}
		for i, p := range ps {
			if p != batchAt+log.Position(i) {
				return fmt.Errorf("copy of position %d landed at %d", batchAt+log.Position(i), p)
			}
		}
		batch, batchBytes = batch[:0], 0
		return nil
	}
	for p := trim; p < tail; p++ {
		data, err := src.Read(ctx, p)
		switch {
		case err == nil:
			if len(batch) == 0 {
				batchAt = p
			}
			batch = append(batch, data)
			batchBytes += len(data)
			if len(batch) >= 1024 || batchBytes >= 8<<20 {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		case errors.Is(err, log.ErrFilled), errors.Is(err, log.ErrNotWritten):
			// Junk stays junk; a hole (a writer that never finished) is
			// filled, as startup would fill it.
			if err := flush(); err != nil {
				return 0, err
			}
			if err := dst.Fill(ctx, p); err != nil {
				return 0, err
			}
		default:
			return 0, fmt.Errorf("read source: %w", err)
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	for p := tail; p < tail+copyFillWindow; p++ {
		if _, err := src.Read(ctx, p); errors.Is(err, log.ErrFilled) {
			if err := dst.Fill(ctx, p); err != nil {
				return 0, err
			}
		}
	}
	// Compare.
	if dt, err := dst.Tail(ctx); err != nil || dt != tail {
		return 0, fmt.Errorf("copy has tail %d (%v), source %d", dt, err, tail)
	}
	for p := log.Position(0); p < tail+copyFillWindow; p++ {
		a, aerr := src.Read(ctx, p)
		b, berr := dst.Read(ctx, p)
		if aerr != nil && errors.Is(aerr, log.ErrNotWritten) && p < tail {
			aerr = log.ErrFilled // filled in the copy
		}
		if string(a) != string(b) || !sameReadError(aerr, berr) {
			return 0, fmt.Errorf("position %d differs after the copy: source %d bytes (%v), copy %d bytes (%v)", p, len(a), aerr, len(b), berr)
		}
	}
	return uint64(tail), nil
}

func sameReadError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	for _, s := range []error{log.ErrFilled, log.ErrNotWritten, log.ErrTrimmed} {
		if errors.Is(a, s) {
			return errors.Is(b, s)
		}
	}
	return false
}
