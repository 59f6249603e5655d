package main

import (
	"context"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the daemon's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg *prometheus.Registry

	commands        *prometheus.CounterVec
	commandDuration *prometheus.HistogramVec
	commitDuration  prometheus.Histogram
	appendDuration  *prometheus.HistogramVec
	flushDuration   prometheus.Histogram
	retries         prometheus.Counter
	watchAborts     prometheus.Counter
	connections     prometheus.Counter
	rejected        prometheus.Counter
	protocolErrors  prometheus.Counter
	unknownCommands prometheus.Counter
}

// Latency buckets from 10µs to ~5s.
var latencyBuckets = prometheus.ExponentialBuckets(10e-6, 2.5, 15)

func newMetrics(s *server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cruzdb_commands_total",
			Help: "Commands executed, by command name (lower case; \"unknown\" for unknown commands).",
		}, []string{"cmd"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cruzdb_command_duration_seconds",
			Help:    "Time to execute a command, from the start of its batch (a pipeline's run of commands executed as one transaction) to its end.",
			Buckets: latencyBuckets,
		}, []string{"cmd"}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cruzdb_commit_duration_seconds",
			Help:    "Time of Txn.Commit for writing transactions: intention append plus the processor's decision.",
			Buckets: latencyBuckets,
		}),
		appendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cruzdb_log_append_duration_seconds",
			Help:    "Time of one log append, by entry type (intention, afterimage, header).",
			Buckets: latencyBuckets,
		}, []string{"type"}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cruzdb_flush_duration_seconds",
			Help:    "Time of one afterimage append by the flusher.",
			Buckets: latencyBuckets,
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cruzdb_conflict_retries_total",
			Help: "Plain-command batches and EXECs the daemon re-ran after a conflict on an unwatched key.",
		}),
		watchAborts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cruzdb_watch_aborts_total",
			Help: "EXECs that replied nil because a watched key changed.",
		}),
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cruzdb_connections_total",
			Help: "Client connections accepted.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cruzdb_rejected_connections_total",
			Help: "Client connections refused because --max-clients was reached.",
		}),
		protocolErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cruzdb_protocol_errors_total",
			Help: "Connections closed for a malformed frame.",
		}),
	}
	m.unknownCommands = m.commands.WithLabelValues("unknown")
	stats := func(f func(cruzdb.Stats) float64) func() float64 {
		return func() float64 {
			if s.db == nil {
				return 0
			}
			return f(s.db.Stats())
		}
	}
	reg.MustRegister(
		m.commands, m.commandDuration, m.commitDuration, m.appendDuration, m.flushDuration,
		m.retries, m.watchAborts, m.connections, m.rejected, m.protocolErrors,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_commits_total", Help: "Intentions committed by replay (this DB's and any other node's)."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.Commits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_aborts_total", Help: "Intentions aborted by replay (conflicts, too old, rejected)."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.Aborts) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_conflicts_total", Help: "Intentions aborted by replay because of a read-write conflict."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.Conflicts) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_intentions_appended_total", Help: "Intentions this daemon appended."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.IntentionsAppended) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_intentions_applied_early_total", Help: "Intentions replay applied while the log was still syncing them (seglog)."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.IntentionsAppliedEarly) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_afterimages_written_total", Help: "Afterimages this daemon appended."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.AfterimagesWritten) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_afterimage_bytes_total", Help: "Bytes of the afterimages this daemon appended."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.AfterimageBytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_afterimages_piggybacked_total", Help: "Afterimages appended in one group commit with one of this daemon's intentions."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.Piggybacked) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_backpressure_waits_total", Help: "Commits that waited for the flusher (unflushed deltas over --max-unflushed-bytes)."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.BackpressureWaits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_node_loads_total", Help: "Evicted tree nodes read back from the log."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.CacheMisses) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_node_load_hits_total", Help: "Node loads served from an afterimage already decoded in memory."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.CacheHits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_node_evictions_total", Help: "Clean tree nodes evicted to keep cached bytes within --cache-bytes."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.Evictions) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cruzdb_holes_filled_total", Help: "Log holes the processor filled."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.HolesFilled) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cruzdb_unflushed_bytes", Help: "Memory of committed deltas not yet flushed as afterimages."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.UnflushedBytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cruzdb_cached_bytes", Help: "Memory of clean cached tree nodes."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.CachedBytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cruzdb_processor_position", Help: "Last log position replayed by the transaction processor."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.Position) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cruzdb_open_transactions", Help: "Transactions not yet committed or rolled back."},
			stats(func(st cruzdb.Stats) float64 { return float64(st.OpenTxns) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cruzdb_log_tail", Help: "The log's tail: the next position to be assigned."},
			func() float64 { return float64(s.logTail()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cruzdb_connected_clients", Help: "Client connections open now."},
			func() float64 { return float64(s.nclients.Load()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	reg.MustRegister(checkpointMetrics(stats)...)
	return m
}

// adminHandler serves /metrics, /healthz, /backup, /log and /debug/pprof on a mux of its
// own (never http.DefaultServeMux).
func (s *server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{Registry: s.metrics.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.healthy(r.Context()); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/backup", s.serveBackup)
	mux.HandleFunc("/log", s.serveLog)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// timedLog wraps the daemon's log to measure append latency by entry type.
// It changes nothing else.
type timedLog struct {
	log.Log
	m      *metrics
	byType [entry.TypeCheckpoint + 1]prometheus.Observer // [0]: other
}

func newTimedLog(l log.Log, m *metrics) *timedLog {
	t := &timedLog{Log: l, m: m}
	t.byType[0] = m.appendDuration.WithLabelValues("other")
	for typ := entry.TypeHeader; typ <= entry.TypeCheckpoint; typ++ {
		t.byType[typ] = m.appendDuration.WithLabelValues(typ.String())
	}
	return t
}

func (l *timedLog) Append(ctx context.Context, data []byte) (log.Position, error) {
	start := time.Now()
	p, err := l.Log.Append(ctx, data)
	if err == nil {
		l.observe(data, time.Since(start).Seconds())
	}
	return p, err
}

// observe records one appended entry's append time by its type.
func (l *timedLog) observe(data []byte, d float64) {
	t := entry.Type(0)
	if len(data) >= entry.FrameSize && data[0] == entry.Magic0 && data[1] == entry.Magic1 && entry.Type(data[3]).Known() {
		t = entry.Type(data[3])
	}
	l.byType[t].Observe(d)
	if t == entry.TypeAfterimage {
		l.m.flushDuration.Observe(d)
	}
}

// timedBatchLog is a timedLog over a log that appends batches, and keeps
// that ability visible (the flusher batches afterimages with intentions
// only on such logs). Each entry of a batch is timed as the whole batch.
type timedBatchLog struct {
	*timedLog
	batch log.BatchAppender
}

func (l *timedBatchLog) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	start := time.Now()
	p, err := l.batch.AppendBatch(ctx, data)
	if err == nil {
		d := time.Since(start).Seconds()
		for _, e := range data {
			l.observe(e, d)
		}
	}
	return p, err
}

// timedRangeBatchLog is a timedBatchLog over a log that also reads ranges
// of entries (boltlog and memlog do both), and keeps that visible too: the
// pager loads a node of a large afterimage by reading just its bytes.
type timedRangeBatchLog struct {
	*timedBatchLog
	log.RangeReader
}

// wrapTimed wraps l in a timedLog, keeping its batch appends and range
// reads if it has them (range reads only together with batch appends).
func wrapTimed(l log.Log, m *metrics) log.Log {
	t := newTimedLog(l, m)
	b, ok := l.(log.BatchAppender)
	if !ok {
		return t
	}
	tb := &timedBatchLog{timedLog: t, batch: b}
	if rr, ok := l.(log.RangeReader); ok {
		return &timedRangeBatchLog{timedBatchLog: tb, RangeReader: rr}
	}
	return tb
}
