//go:build unix

package seglog

import (
	"errors"
	"os"
	"syscall"
)

// errLocked: another opener holds the directory's lock.
var errLocked = errors.New("directory is in use by another opener")

// lockFile takes an exclusive, non-blocking flock on f.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}
