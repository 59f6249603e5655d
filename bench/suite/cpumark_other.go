//go:build !unix

package suite

// processCPU is 0 where getrusage is missing.
func processCPU() float64 { return 0 }
