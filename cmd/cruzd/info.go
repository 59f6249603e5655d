package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cruzlog/cruzdb"
)

// redisVersion is the Redis version cruzd reports, for clients that check
// it before using a feature. cruzd implements the subset of Redis 7.0's
// string and transaction commands listed in the README.
const redisVersion = "7.0.0"

// version is cruzd's own version.
const version = "0.1.0"

// INFO [section ...]: server, clients, stats, keyspace and cruzdb. "all",
// "everything" and "default" (or no argument) give every section.
func cmdInfo(c *conn, tx *cruzdb.Txn, args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	all := len(want) == 0 || want["all"] || want["everything"] || want["default"]
	var b strings.Builder
	section := func(name string, f func(*strings.Builder)) {
		if !all && !want[strings.ToLower(name)] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		f(&b)
	}
	field := func(b *strings.Builder, k string, v any) { fmt.Fprintf(b, "%s:%v\r\n", k, v) }
	s := c.s
	section("Server", func(b *strings.Builder) {
		field(b, "redis_version", redisVersion)
		field(b, "cruzd_version", version)
		field(b, "redis_mode", "standalone")
		field(b, "os", runtime.GOOS+" "+runtime.GOARCH)
		field(b, "arch_bits", strconv.Itoa(strconv.IntSize))
		field(b, "go_version", runtime.Version())
		field(b, "process_id", os.Getpid())
		field(b, "tcp_port", portOf(s.Addr().String()))
		field(b, "uptime_in_seconds", int64(time.Since(s.started).Seconds()))
		field(b, "uptime_in_days", int64(time.Since(s.started).Hours()/24))
		field(b, "data_dir", s.cfg.DataDir)
		serverFields(b, s)
	})
	section("Clients", func(b *strings.Builder) {
		field(b, "connected_clients", s.nclients.Load())
		field(b, "maxclients", s.cfg.MaxClients)
		clientsFields(b)
	})
	section("Memory", func(b *strings.Builder) { memoryFields(b) })
	section("Stats", func(b *strings.Builder) {
		field(b, "total_connections_received", s.totalConns.Load())
		field(b, "total_commands_processed", s.totalCmds.Load())
		statsFields(b, s)
	})
	section("Persistence", func(b *strings.Builder) {
		field(b, "loading", 0)
		// Every acknowledged write is in the log (fsynced unless --no-sync).
		field(b, "aof_enabled", 1)
		field(b, "fsync", map[bool]string{true: "no", false: "always"}[s.cfg.NoSync])
		persistenceFields(b, s)
	})
	section("CPU", func(b *strings.Builder) { cpuFields(b) })
	section("Checkpoint", func(b *strings.Builder) { checkpointFields(b, s) })
	section("Keyspace", func(b *strings.Builder) {
		count := func(tx *cruzdb.Txn) error {
			n, expires, err := countKeys(tx)
			if err != nil {
				return err
			}
			if n > 0 {
				field(b, "db0", fmt.Sprintf("keys=%d,expires=%d,avg_ttl=0", n, expires))
			}
			return nil
		}
		var err error
		if tx != nil {
			err = count(tx)
		} else {
			err = s.db.View(s.ctx, count)
		}
		if err != nil {
			field(b, "error", strings.ReplaceAll(err.Error(), "\n", " "))
		}
	})
	section("Cruzdb", func(b *strings.Builder) {
		st := s.db.Stats()
		tail := s.logTail()
		field(b, "log_tail", tail)
		field(b, "processor_position", uint64(st.Position))
		lag := uint64(0)
		if tail > 0 && tail-1 > uint64(st.Position) {
			lag = tail - 1 - uint64(st.Position)
		}
		field(b, "replay_lag_positions", lag)
		for _, kv := range s.clusterInfo() {
			field(b, kv[0], kv[1])
		}
		field(b, "commits", st.Commits)
		field(b, "aborts", st.Aborts)
		field(b, "conflicts", st.Conflicts)
		field(b, "too_old", st.TooOld)
		field(b, "rejected", st.Rejected)
		field(b, "intentions_appended", st.IntentionsAppended)
		field(b, "intentions_applied_early", st.IntentionsAppliedEarly)
		field(b, "afterimages_written", st.AfterimagesWritten)
		field(b, "afterimage_bytes", st.AfterimageBytes)
		field(b, "afterimages_piggybacked", st.Piggybacked)
		field(b, "holes_filled", st.HolesFilled)
		field(b, "unflushed_bytes", st.UnflushedBytes)
		field(b, "flush_lag_bytes", st.UnflushedBytes)
		field(b, "backpressure_waits", st.BackpressureWaits)
		field(b, "cached_bytes", st.CachedBytes)
		field(b, "node_loads", st.CacheMisses)
		field(b, "node_load_hits", st.CacheHits)
		field(b, "node_evictions", st.Evictions)
		field(b, "open_transactions", st.OpenTxns)
		field(b, "flush_workers", s.cfg.FlushWorkers)
		field(b, "flush_serial", boolInt(s.cfg.FlushSerial))
	})
	c.w.BulkString(b.String())
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// CONFIG GET answers the parameters tools ask about (redis-benchmark asks
// for save and appendonly); everything is configured with flags, so CONFIG
// SET is refused.
func cmdConfig(c *conn, _ *cruzdb.Txn, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "get") && len(args) >= 3:
		params := c.s.configParams()
		names := make([]string, 0, len(params))
		for k := range params {
			names = append(names, k)
		}
		slices.Sort(names)
		var out []string
		seen := map[string]bool{}
		for _, pat := range args[2:] {
			lp := []byte(strings.ToLower(string(pat)))
			for _, n := range names {
				if !seen[n] && globMatch(lp, []byte(n)) {
					seen[n] = true
					out = append(out, n, params[n])
				}
			}
		}
		c.w.ArrayLen(len(out))
		for _, s := range out {
			c.w.BulkString(s)
		}
	case eqFold(sub, "set") && len(args) >= 4:
		c.configSet(args[2:])
	case eqFold(sub, "resetstat") && len(args) == 2:
		c.w.OK()
	default:
		c.w.Err("ERR unknown subcommand or wrong number of arguments for '" + string(sub) + "'. Try CONFIG HELP.")
	}
}

func (s *server) configParams() map[string]string {
	fsync := "always"
	if s.cfg.NoSync {
		fsync = "no"
	}
	m := map[string]string{
		"save":                      "",
		"appendonly":                "yes",
		"appendfsync":               fsync,
		"databases":                 "1",
		"maxclients":                strconv.Itoa(s.cfg.MaxClients),
		"timeout":                   strconv.FormatInt(int64(s.cfg.IdleTimeout/time.Second), 10),
		"proto-max-bulk-len":        strconv.FormatInt(s.cfg.MaxBulkLen, 10),
		"client-query-buffer-limit": strconv.FormatInt(s.cfg.ClientQueryBufferLimit, 10),
		"port":                      portOf(s.Addr().String()),
		"dir":                       s.cfg.DataDir,
		"maxmemory":                 "0",
		"maxmemory-policy":          "noeviction",
		"cluster-enabled":           "no",
		"notify-keyspace-events":    "",
	}
	for k, v := range ignoredTunables {
		m[k] = v
	}
	s.tuning.Range(func(k, v any) bool {
		m[k.(string)] = v.(string)
		return true
	})
	return m
}

// COMMAND: enough for redis-cli and client libraries. COMMAND alone lists
// every command in the Redis 2.8 to 6 form (name, arity, flags, first key,
// last key, step); COMMAND DOCS replies an empty map.
func cmdCommand(c *conn, _ *cruzdb.Txn, args [][]byte) {
	names := make([]string, 0, len(c.s.specs))
	for n := range c.s.specs {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(args) == 1 {
		c.w.ArrayLen(len(names))
		for _, n := range names {
			c.commandInfo(c.s.specs[n])
		}
		return
	}
	sub := args[1]
	switch {
	case eqFold(sub, "count") && len(args) == 2:
		c.w.Int(int64(len(names)))
	case eqFold(sub, "docs"):
		c.commandDocs(args[2:], names)
	case eqFold(sub, "list") && len(args) == 2:
		c.w.ArrayLen(len(names))
		for _, n := range names {
			c.w.BulkString(n)
		}
	case eqFold(sub, "info"):
		c.w.ArrayLen(len(args) - 2)
		for _, a := range args[2:] {
			if sp := c.lookup(a); sp != nil {
				c.commandInfo(sp)
			} else {
				c.w.NullArray()
			}
		}
	default:
		c.w.Err("ERR unknown subcommand '" + string(sub) + "'. Try COMMAND HELP.")
	}
}

func (c *conn) commandInfo(sp *cmdSpec) {
	var flags []string
	if sp.flags&flagWrite != 0 {
		flags = append(flags, "write")
	} else if sp.first != 0 {
		flags = append(flags, "readonly")
	}
	if sp.flags&flagNoQueue != 0 {
		flags = append(flags, "no-multi")
	}
	c.w.ArrayLen(6)
	c.w.BulkString(sp.name)
	c.w.Int(int64(sp.arity))
	c.w.ArrayLen(len(flags))
	for _, f := range flags {
		c.w.Simple(f)
	}
	c.w.Int(int64(sp.first))
	c.w.Int(int64(sp.last))
	c.w.Int(int64(sp.step))
}
