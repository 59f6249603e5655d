//go:build unix

package cowtree

import "syscall"

// cpuNanos is the process's CPU time (user and system), for benchmarks on
// a shared machine, where wall time measures the neighbours too.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
