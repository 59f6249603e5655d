package main

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cruzlog/cruzdb"
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
