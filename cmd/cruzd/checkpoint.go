package main

import (
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/seglog"
)

// BGREWRITEAOF: Redis compacts its append-only file; cruzd's log is
// compacted by a checkpoint (an image of the state, then a trim below it).
// It starts one in the background and replies as Redis does. Automatic
// checkpoints run anyway (see cruzdb.Options.CheckpointLogRatio).
func cmdBgRewriteAOF(c *conn, _ *cruzdb.Txn, _ [][]byte) {
	s := c.s
	go func() {
		info, err := s.db.Checkpoint(s.ctx)
		if err != nil {
			s.logger.Warn("BGREWRITEAOF: checkpoint failed", "err", err)
			return
		}
		s.logger.Info("BGREWRITEAOF: checkpoint done", "cut", info.Position, "trimmed_below", info.TrimmedBelow,
			"nodes", info.Nodes, "bytes", info.Bytes, "prepare", info.Prepare, "authority", info.Authority)
	}()
	c.w.Simple("Background append only file rewriting started")
}

// checkpointFields is INFO's Checkpoint section.
func checkpointFields(b *strings.Builder, s *server) {
	st := s.db.Stats()
	field := func(k string, v any) { fmt.Fprintf(b, "%s:%v\r\n", k, v) }
	inProgress := 0
	if st.CheckpointInProgress {
		inProgress = 1
	}
	field("checkpoints", st.Checkpoints)
	field("checkpoint_in_progress", inProgress)
	field("last_checkpoint_position", uint64(st.LastCheckpoint))
	field("log_trimmed_below", uint64(st.TrimmedBelow))
	field("log_live_bytes", st.LogLiveBytes)
	field("checkpoints_written", st.CheckpointsWritten)
	field("checkpoint_bytes", st.CheckpointBytes)
	field("checkpoints_aborted", st.CheckpointsAborted)
	field("auto_checkpoints", st.AutoCheckpoints)
	field("checkpoint_commit_waits", st.CheckpointWaits)
	field("last_checkpoint_prepare_usec", st.CheckpointPrepare.Microseconds())
	field("last_checkpoint_authority_usec", st.CheckpointAuthority.Microseconds())
	field("rebootstraps", st.Rebootstraps)
}

// checkpointMetrics are the /metrics series of checkpoints and trimming.
func checkpointMetrics(stats func(func(cruzdb.Stats) float64) func() float64) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cruzdb_checkpoint_prepare_seconds", Help: "Duration of the newest checkpoint's preparation (its image's chunks)."},
			stats(func(st cruzdb.Stats) float64 { return st.CheckpointPrepare.Seconds() })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cruzdb_checkpoint_authority_seconds", Help: "Duration of the newest checkpoint's authority steps (marker confirmed, then the trim)."},
			stats(func(st cruzdb.Stats) float64 { return st.CheckpointAuthority.Seconds() })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_checkpoints_total", Help: "Checkpoint images confirmed by replay."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.Checkpoints) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_checkpoints_aborted_total", Help: "Checkpoint images this daemon abandoned because another node's was confirmed first."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.CheckpointsAborted) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cruzdb_log_trimmed_below", Help: "The log position this daemon trimmed the log below (0: nothing trimmed)."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.TrimmedBelow) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cruzdb_log_live_bytes", Help: "Bytes of the log entries at or above the trim point that this daemon replayed."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.LogLiveBytes) })),
	}
}

// checkpointInProgress is 1 while a checkpoint's image is being written.
func checkpointInProgress(s *server) int {
	if s.db != nil && s.db.Stats().CheckpointInProgress {
		return 1
	}
	return 0
}

// checkpointConfig is what `cruzd serve` is told about checkpoints and the
// embedded log's segments.
type checkpointConfig struct {
	// LogRatio is cruzdb Options.CheckpointLogRatio: the automatic trigger
	// (negative: no automatic checkpoints). Default cruzdb's, 2.
	LogRatio float64
	// MinLogBytes is cruzdb Options.CheckpointMinLogBytes: the least log
	// growth that triggers an automatic checkpoint. Default cruzdb's, 96 KiB.
	MinLogBytes int64
	// Serial is cruzdb Options.CheckpointSerial. Default false.
	Serial bool
	// SegmentSize is the size of new segment files of a seglog data
	// directory (seglog Options.SegmentSize): the unit in which a trim gives
	// disk space back. 0: seglog's default, 64 MiB.
	SegmentSize int64
}

func defaultCheckpointConfig() checkpointConfig {
	d := cruzdb.DefaultOptions()
	return checkpointConfig{LogRatio: d.CheckpointLogRatio, MinLogBytes: d.CheckpointMinLogBytes}
}

func checkpointFlags(fs *flag.FlagSet, c *checkpointConfig) {
	fs.Float64Var(&c.LogRatio, "checkpoint-log-ratio", c.LogRatio, "start an automatic checkpoint when the log grew by this many times the newest checkpoint's image since its cut (cruzdb Options.CheckpointLogRatio); negative: no automatic checkpoints")
	fs.Var(byteSize{&c.MinLogBytes}, "checkpoint-min-log-bytes", "least log growth in `bytes` that starts an automatic checkpoint (cruzdb Options.CheckpointMinLogBytes)")
	fs.BoolVar(&c.Serial, "checkpoint-serial", c.Serial, "commits wait while a checkpoint is prepared (cruzdb Options.CheckpointSerial)")
	fs.Var(byteSize{&c.SegmentSize}, "seglog-segment-size", "largest size in `bytes` of a segment file of the embedded seglog log (files grow in steps up to it; trims delete whole segments below the trim point and retire the active one when most of it is dead) (64KiB to 1GiB; 0: seglog's default, 64MiB)")
}

func (c *checkpointConfig) validate() error {
	switch {
	case c.LogRatio == 0 || math.IsNaN(c.LogRatio) || math.IsInf(c.LogRatio, 0):
		return fmt.Errorf("--checkpoint-log-ratio %v: want a positive number, or a negative one to turn automatic checkpoints off", c.LogRatio)
	case c.MinLogBytes < 1:
		return fmt.Errorf("--checkpoint-min-log-bytes %d must be at least 1", c.MinLogBytes)
	case c.SegmentSize != 0 && (c.SegmentSize < 64<<10 || c.SegmentSize > 1<<30):
		return fmt.Errorf("--seglog-segment-size %d is outside [64KiB, 1GiB]", c.SegmentSize)
	}
	return nil
}

// apply sets the checkpoint options of o.
func (c *checkpointConfig) apply(o *cruzdb.Options) {
	o.CheckpointLogRatio = c.LogRatio
	o.CheckpointMinLogBytes = c.MinLogBytes
	o.CheckpointSerial = c.Serial
}

// openEmbeddedLog opens the data directory's embedded log as
// cruzdb.OpenEmbeddedLog does, with --seglog-segment-size for seglog.
func openEmbeddedLog(dir string, noSync bool, segmentSize int64) (log.Log, error) {
	backend, err := cruzdb.EmbeddedLogBackend(dir)
	if err != nil {
		return nil, err
	}
	if backend != cruzdb.BackendSeglog || segmentSize == 0 {
		return cruzdb.OpenLogBackend(dir, backend, noSync)
	}
	return seglog.Open(filepath.Join(dir, cruzdb.SegLogDirName), &seglog.Options{NoSync: noSync, SegmentSize: segmentSize})
}
