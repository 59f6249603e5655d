package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Introspection as Redis reports it: CLIENT LIST/INFO lines and the INFO
// fields of the server, clients, memory, persistence, stats and cpu
// sections, with Redis's field names. Fields about machinery cruzd does not
// have (replication, RDB children, pub/sub) report what is true for cruzd:
// none.

const errClientName = "ERR Client names cannot contain spaces, newlines or special characters."

// validClientName: Redis allows the printable ASCII characters except the
// space ('!' to '~').
func validClientName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

// clientInfo is the connection's CLIENT LIST / CLIENT INFO line.
func (c *conn) clientInfo() string {
	now := time.Now()
	flags, multi := "N", -1
	if c.inMulti {
		flags, multi = "x", len(c.queued)
	}
	cmd := c.lastCmd
	if cmd == "" {
		cmd = "NULL"
	}
	active := c.active
	if active.IsZero() {
		active = c.created
	}
	var b strings.Builder
	fmt.Fprintf(&b, "id=%d addr=%s laddr=%s fd=%d name=%s age=%d idle=%d flags=%s db=0 sub=0 psub=0 ssub=0 multi=%d qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=%d rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=default redir=-1 resp=2",
		c.id, c.nc.RemoteAddr(), c.nc.LocalAddr(), c.id+7, c.name,
		int64(now.Sub(c.created).Seconds()), int64(now.Sub(active).Seconds()), flags, multi, readBufSize, cmd)
	return b.String()
}

// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...]
func (c *conn) clientList(args [][]byte) {
	var ids []int64
	typ := ""
	for i := 0; i < len(args); i++ {
		switch {
		case eqFold(args[i], "type") && i+1 < len(args):
			i++
			t := strings.ToLower(string(args[i]))
			if t != "normal" && t != "master" && t != "replica" && t != "slave" && t != "pubsub" {
				c.w.Err("ERR Unknown client type '" + string(args[i]) + "'")
				return
			}
			typ = t
		case eqFold(args[i], "id") && i+1 < len(args):
			for i+1 < len(args) {
				n, err := strconv.ParseInt(string(args[i+1]), 10, 64)
				if err != nil || n <= 0 {
					c.w.Err("ERR Invalid client ID")
					return
				}
				ids = append(ids, n)
				i++
			}
		default:
			c.w.Err(errSyntax)
			return
		}
	}
	c.s.mu.Lock()
	conns := make([]*conn, 0, len(c.s.conns))
	for o := range c.s.conns {
		conns = append(conns, o)
	}
	c.s.mu.Unlock()
	slices.SortFunc(conns, func(a, b *conn) int { return int(a.id - b.id) })
	var b strings.Builder
	for _, o := range conns {
		if typ != "" && typ != "normal" {
			continue // every cruzd client is a normal one
		}
		if ids != nil && !slices.Contains(ids, o.id) {
			continue
		}
		if o == c {
			b.WriteString(c.clientInfo())
		} else {
			b.WriteString(o.listLine())
		}
		b.WriteByte('\n')
	}
	c.w.BulkString(b.String())
}

// sharedInfo is what another connection's goroutine may read of this one.
type sharedInfo struct{ name string }

// setName sets the connection's name (CLIENT SETNAME, HELLO SETNAME).
func (c *conn) setName(name string) {
	c.name = name
	c.shared.Store(&sharedInfo{name: name})
}

// listLine is another connection's line: the fields set once at creation,
// and its name; the rest (idle time, last command) belong to its goroutine.
func (c *conn) listLine() string {
	name := ""
	if si := c.shared.Load(); si != nil {
		name = si.name
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=%d name=%s age=%d idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=%d rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=NULL user=default redir=-1 resp=2",
		c.id, c.nc.RemoteAddr(), c.nc.LocalAddr(), c.id+7, name, int64(time.Since(c.created).Seconds()), readBufSize)
}

func infoField(b *strings.Builder, k string, v any) { fmt.Fprintf(b, "%s:%v\r\n", k, v) }

var runID = fmt.Sprintf("%016x%016x%08x", time.Now().UnixNano(), uint64(os.Getpid())*0x9e3779b97f4a7c15, uint32(time.Now().Nanosecond()))

func serverFields(b *strings.Builder, s *server) {
	exe, _ := os.Executable()
	infoField(b, "redis_git_sha1", "00000000")
	infoField(b, "redis_git_dirty", 0)
	infoField(b, "multiplexing_api", "go")
	infoField(b, "run_id", runID)
	infoField(b, "server_time_usec", time.Now().UnixMicro())
	infoField(b, "hz", 10)
	infoField(b, "configured_hz", 10)
	infoField(b, "executable", exe)
	infoField(b, "config_file", "")
	infoField(b, "io_threads_active", 0)
}

func clientsFields(b *strings.Builder) {
	infoField(b, "cluster_connections", 0)
	infoField(b, "client_recent_max_input_buffer", 0)
	infoField(b, "client_recent_max_output_buffer", 0)
	infoField(b, "blocked_clients", 0)
	infoField(b, "tracking_clients", 0)
	infoField(b, "clients_in_timeout_table", 0)
}

func memoryFields(b *strings.Builder) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	infoField(b, "used_memory", ms.HeapAlloc)
	infoField(b, "used_memory_human", humanBytes(ms.HeapAlloc))
	infoField(b, "used_memory_rss", ms.Sys)
	infoField(b, "used_memory_rss_human", humanBytes(ms.Sys))
	infoField(b, "used_memory_peak", ms.HeapSys)
	infoField(b, "used_memory_peak_human", humanBytes(ms.HeapSys))
	infoField(b, "total_system_memory", 0)
	infoField(b, "maxmemory", 0)
	infoField(b, "maxmemory_human", "0B")
	infoField(b, "maxmemory_policy", "noeviction")
	infoField(b, "mem_allocator", "go-"+runtime.Version())
	infoField(b, "lazyfree_pending_objects", 0)
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func persistenceFields(b *strings.Builder, s *server) {
	infoField(b, "async_loading", 0)
	infoField(b, "rdb_changes_since_last_save", 0)
	infoField(b, "rdb_bgsave_in_progress", 0)
	infoField(b, "rdb_last_save_time", s.started.Unix())
	infoField(b, "rdb_last_bgsave_status", "ok")
	infoField(b, "aof_rewrite_in_progress", checkpointInProgress(s)) // a checkpoint compacts the log
	infoField(b, "aof_last_write_status", "ok")
}

func statsFields(b *strings.Builder, s *server) {
	infoField(b, "instantaneous_ops_per_sec", 0)
	var expired int64
	if s.sweep != nil {
		expired = s.sweep.expired.Load()
	}
	infoField(b, "expired_keys", expired)
	infoField(b, "evicted_keys", 0)
	infoField(b, "pubsub_channels", 0)
	infoField(b, "pubsub_patterns", 0)
}

func cpuFields(b *strings.Builder) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	sec := func(t syscall.Timeval) string { return fmt.Sprintf("%d.%06d", t.Sec, t.Usec) }
	infoField(b, "used_cpu_sys", sec(ru.Stime))
	infoField(b, "used_cpu_user", sec(ru.Utime))
	infoField(b, "used_cpu_sys_children", "0.000000")
	infoField(b, "used_cpu_user_children", "0.000000")
}

// commandGroup is the Redis documentation group of a command.
func commandGroup(name string) string {
	switch {
	case name == "hello":
		return "connection"
	case strings.HasPrefix(name, "h"):
		return "hash"
	case name == "smove" || name == "sscan" || (strings.HasPrefix(name, "s") && (strings.Contains(name, "member") ||
		strings.HasPrefix(name, "sinter") || strings.HasPrefix(name, "sunion") || strings.HasPrefix(name, "sdiff") ||
		name == "sadd" || name == "srem" || name == "scard" || name == "spop")):
		return "set"
	case slices.Contains([]string{"get", "set", "setnx", "getset", "mget", "mset", "msetnx", "incr", "decr", "incrby",
		"decrby", "incrbyfloat", "append", "strlen", "getdel", "getex", "setex", "psetex", "setrange", "getrange", "substr"}, name):
		return "string"
	case slices.Contains([]string{"multi", "exec", "discard", "watch", "unwatch"}, name):
		return "transactions"
	case slices.Contains([]string{"ping", "echo", "quit", "select", "hello", "auth", "client"}, name):
		return "connection"
	case slices.Contains([]string{"command", "config", "info", "dbsize", "flushall", "flushdb", "memory"}, name):
		return "server"
	case name == "function":
		return "scripting"
	}
	return "generic"
}

// COMMAND DOCS [name ...]: for each command cruzd serves (all when none is
// named), a map with its group and arity, as Redis's map form.
func (c *conn) commandDocs(args [][]byte, names []string) {
	var list []*cmdSpec
	if len(args) == 0 {
		for _, n := range names {
			list = append(list, c.s.specs[n])
		}
	} else {
		for _, a := range args {
			if sp := c.lookup(a); sp != nil {
				list = append(list, sp)
			}
		}
	}
	c.w.ArrayLen(2 * len(list))
	for _, sp := range list {
		c.w.BulkString(sp.name)
		c.w.ArrayLen(4)
		c.w.BulkString("summary")
		c.w.BulkString(strings.ToUpper(sp.name) + ": see cruzd's command reference (cmd/cruzd/README.md)")
		c.w.BulkString("group")
		c.w.BulkString(commandGroup(sp.name))
	}
}
