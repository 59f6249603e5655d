package memlog_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil/fixture"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/logtest"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// reopen treats a crash clone of the closed log as its durable state.
func reopen(t *testing.T, closed log.Log) log.Log {
	return closed.(*memlog.Log).CrashClone()
}

// makeHole makes the next append take a position and die before writing.
func makeHole(t *testing.T, l log.Log) log.Position {
	t.Helper()
	return fixture.Hole(t, l.(*memlog.Log))
}

func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) log.Log { return memlog.New(nil) },
		logtest.Persistent(reopen), logtest.Holes(makeHole))
}

// With latency, appends in flight leave holes that fills can win: the suite
// must pass all the same.
func TestConformanceWithLatency(t *testing.T) {
	opts := &memlog.Options{AppendLatency: 20 * time.Microsecond, ReadLatency: 2 * time.Microsecond}
	logtest.Run(t, func(t *testing.T) log.Log { return memlog.New(opts) },
		logtest.Persistent(reopen), logtest.Holes(makeHole), logtest.RaceRounds(100))
}

// With a random latency distribution and harmless delays injected.
func TestConformanceWithJitter(t *testing.T) {
	opts := &memlog.Options{
		Seed: 7,
		Latency: func(op memlog.Op, r *rand.Rand) time.Duration {
			return time.Duration(r.IntN(10)) * time.Microsecond
		},
		Inject: func(c memlog.Call, r *rand.Rand) memlog.Fault {
			if r.IntN(4) == 0 {
				return memlog.Fault{Delay: 5 * time.Microsecond}
			}
			return memlog.Fault{}
		},
	}
	logtest.Run(t, func(t *testing.T) log.Log { return memlog.New(opts) },
		logtest.Persistent(reopen), logtest.RaceRounds(100))
}
