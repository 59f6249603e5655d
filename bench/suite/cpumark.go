package suite

import (
	"runtime/metrics"
	"time"
)

// cpuMark is a reading of the Go runtime's CPU and GC counters at a time
// of a run: the difference of two is what a stretch of the run cost.
type cpuMark struct {
	at         time.Duration // since the run's start
	proc, sys  float64       // process CPU seconds (getrusage: user and system; system)
	faults     int64         // minor page faults
	gc, assist float64       // CPU seconds (runtime/metrics' estimates, updated at GC ends)
	cycles     uint64        // completed GC cycles
	alloc      uint64        // bytes allocated on the heap
	live       uint64        // the heap's live bytes at the last GC's end
}

var cpuMarkNames = []string{
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/gc/mark/assist:cpu-seconds",
	"/gc/cycles/total:gc-cycles",
	"/gc/heap/allocs:bytes",
	"/gc/heap/live:bytes",
}

// readCPUMark reads the counters; at is the time since start.
func readCPUMark(start time.Time) cpuMark {
	s := make([]metrics.Sample, len(cpuMarkNames))
	for i, n := range cpuMarkNames {
		s[i].Name = n
	}
	metrics.Read(s)
	f := func(i int) float64 {
		if s[i].Value.Kind() == metrics.KindFloat64 {
			return s[i].Value.Float64()
		}
		return 0
	}
	u := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	user, sys, faults := processCPU()
	return cpuMark{at: time.Since(start), proc: user + sys, sys: sys, faults: faults, gc: f(0), assist: f(1), cycles: u(2), alloc: u(3), live: u(4)}
}

// cpuCells are a stretch's cells from a to b: seconds, CPU seconds a
// wall second of the process (and of it, the kernel's), minor page faults
// a second, CPU seconds a wall second of GC (and of it, assists), GC cycles, MB
// allocated a second, and the live heap as the last GC cycle before b's
// end found it. The runtime's CPU classes are updated only at the end
// of a GC cycle, so over a stretch with few cycles they are coarse.
func cpuCells(a, b cpuMark) []any {
	wall := (b.at - a.at).Seconds()
	if wall <= 0 {
		wall = 1e-9
	}
	return []any{wall, (b.proc - a.proc) / wall, (b.sys - a.sys) / wall, float64(b.faults-a.faults) / wall, (b.gc - a.gc) / wall, (b.assist - a.assist) / wall,
		b.cycles - a.cycles, float64(b.alloc-a.alloc) / 1e6 / wall, float64(b.live) / 1e6}
}

var cpuColumns = []string{"s", "process CPU/s", "of it system", "page faults/s", "GC CPU/s", "assist CPU/s", "GC cycles", "alloc MB/s", "live heap MB at end"}
