package main

import (
	"flag"
	"fmt"

	"github.com/cruzlog/cruzdb/log/seglog"
)

// extraStats formats seglog counters beyond groups and bytes.
func extraStats(s, s0 seglog.Stats) string {
	g := max(s.Groups-s0.Groups, 1)
	gaps := max(s.Gaps-s0.Gaps, 1)
	return fmt.Sprintf("prepared=%dKB unprepared=%d prepwaits=%d led=%d recycled=%d sync=%dµs/group gap=%dµs chained=%.2f",
		(s.Prepared-s0.Prepared)>>10, s.Unprepared-s0.Unprepared, s.PrepareWaits-s0.PrepareWaits, s.Led-s0.Led,
		s.Recycled-s0.Recycled, (s.SyncTime-s0.SyncTime).Microseconds()/int64(g),
		(s.GapTime-s0.GapTime).Microseconds()/int64(gaps), float64(s.Gaps-s0.Gaps)/float64(g))
}

// Seglog options of the cruzdb system (flags -segsize, -spares, -nozero).
var (
	segSize   int64
	segSpares int
	segNoZero bool
)

func init() {
	flag.Int64Var(&segSize, "segsize", 0, "cruzdb: seglog Options.SegmentSize (0: the default)")
	flag.IntVar(&segSpares, "spares", 0, "cruzdb: seglog Options.Spares (0: the default; negative: none)")
	flag.BoolVar(&segNoZero, "nozero", false, "cruzdb: seglog Options.NoZeroFill")
}

// segOptions returns the seglog options the flags ask for.
func segOptions() *seglog.Options {
	return &seglog.Options{SegmentSize: segSize, Spares: segSpares, NoZeroFill: segNoZero}
}
