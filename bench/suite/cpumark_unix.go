//go:build unix

package suite

import "syscall"

// processCPU is the process's user and system CPU seconds so far, and its
// minor page faults (a first touch of memory).
func processCPU() (user, sys float64, faults int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, 0
	}
	return float64(ru.Utime.Nano()) / 1e9, float64(ru.Stime.Nano()) / 1e9, int64(ru.Minflt)
}
