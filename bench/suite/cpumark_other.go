//go:build !unix

package suite

// processCPU is 0 where getrusage is missing.
func processCPU() (user, sys float64, faults int64) { return 0, 0, 0 }
