//go:build !unix

package cowtree

// cpuNanos is 0 where getrusage is missing: the CPU metric then reads 0.
func cpuNanos() int64 { return 0 }
