package seglog

import (
	"testing"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/logtest"
)

func mustOpen(t *testing.T, dir string, opts *Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return l
}

func openFresh(opts *Options) func(t *testing.T) log.Log {
	return func(t *testing.T) log.Log { return mustOpen(t, t.TempDir(), opts) }
}

func reopenWith(opts *Options) func(t *testing.T, closed log.Log) log.Log {
	return func(t *testing.T, closed log.Log) log.Log {
		return mustOpen(t, closed.(*Log).dir, opts)
	}
}

// TestConformance runs the suite with NoSync: the suite checks semantics,
// which fdatasync does not change. The durable path is covered by the
// crash tests of this package.
func TestConformance(t *testing.T) {
	opts := &Options{NoSync: true}
	logtest.Run(t, openFresh(opts), logtest.Persistent(reopenWith(opts)))
}

// TestConformanceSmallSegments runs the suite with the smallest segments
// and one-entry groups, so that groups roll segments all the time (the 16
// MiB entry makes a segment of its own) and trims delete them.
func TestConformanceSmallSegments(t *testing.T) {
	opts := &Options{NoSync: true, SegmentSize: minSegmentSize, MaxGroupBytes: 1}
	logtest.Run(t, openFresh(opts), logtest.Persistent(reopenWith(opts)), logtest.RaceRounds(100))
}

// TestConformanceSynced runs the suite once with real fdatasyncs.
func TestConformanceSynced(t *testing.T) {
	logtest.Run(t, openFresh(nil), logtest.Persistent(reopenWith(nil)), logtest.RaceRounds(50))
}
