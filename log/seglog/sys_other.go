//go:build !linux

package seglog

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

func preallocate(f *os.File, size int64) error { return f.Truncate(size) }

func dataEnd(f *os.File, size int64) int64 { return size }

func firstHole(f *os.File, size int64) int64 { return size }

func punchHole(f *os.File, off, n int64) bool { return false }
