package main

import (
	"fmt"

	"github.com/cruzlog/cruzdb/log/seglog"
)

// extraStats formats seglog counters beyond groups and bytes.
func extraStats(s, s0 seglog.Stats) string {
	return fmt.Sprintf("prepared=%dKB unprepared=%d prepwaits=%d led=%d",
		(s.Prepared-s0.Prepared)>>10, s.Unprepared-s0.Unprepared, s.PrepareWaits-s0.PrepareWaits, s.Led-s0.Led)
}
