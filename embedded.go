package cruzdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/boltlog"
	"github.com/cruzlog/cruzdb/log/seglog"
)

// SegLogDirName is the directory, inside the database directory, of the
// embedded segmented log (log/seglog), which new databases use.
const SegLogDirName = "seglog"

// Embedded log backends, as EmbeddedLogBackend names them.
const (
	BackendSeglog  = "seglog"
	BackendBoltlog = "boltlog"
)

// EmbeddedLogBackend says which embedded log the database directory dir
// uses: "boltlog" if it holds a LogFileName file (a database created before
// seglog became the default; it keeps its backend), otherwise "seglog" (in
// dir/SegLogDirName, created if missing). A directory that holds both is
// refused: which one holds the database is not for cruzdb to guess.
func EmbeddedLogBackend(dir string) (string, error) {
	_, berr := os.Stat(filepath.Join(dir, LogFileName))
	if berr != nil && !errors.Is(berr, os.ErrNotExist) {
		return "", berr
	}
	_, serr := os.Stat(filepath.Join(dir, SegLogDirName))
	if serr != nil && !errors.Is(serr, os.ErrNotExist) {
		return "", serr
	}
	switch {
	case berr == nil && serr == nil:
		return "", fmt.Errorf("%w: %s holds both a boltlog log (%s) and a seglog log (%s/); move one away", ErrInvalidOptions, dir, LogFileName, SegLogDirName)
	case berr == nil:
		return BackendBoltlog, nil
	}
	return BackendSeglog, nil
}

// OpenEmbeddedLog opens the embedded log of the database directory dir, as
// Open does when Options.Log is nil: see EmbeddedLogBackend. noSync turns
// off fsync (for tests only: see Options.NoSync). The caller closes the log.
func OpenEmbeddedLog(dir string, noSync bool) (log.Log, error) {
	backend, err := EmbeddedLogBackend(dir)
	if err != nil {
		return nil, err
	}
	return OpenLogBackend(dir, backend, noSync)
}

// OpenLogBackend opens (creating it if missing) the embedded log of the
// named backend in the database directory dir.
func OpenLogBackend(dir, backend string, noSync bool) (log.Log, error) {
	switch backend {
	case BackendBoltlog:
		return boltlog.Open(filepath.Join(dir, LogFileName), &boltlog.Options{NoSync: noSync})
	case BackendSeglog:
		return seglog.Open(filepath.Join(dir, SegLogDirName), &seglog.Options{NoSync: noSync})
	}
	return nil, fmt.Errorf("%w: unknown log backend %q (want %q or %q)", ErrInvalidOptions, backend, BackendSeglog, BackendBoltlog)
}
