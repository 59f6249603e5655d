package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log"
)

// config is everything `cruzd serve` is told.
type config struct {
	DataDir    string
	ListenAddr string
	AdminAddr  string

	// Database options (cruzdb.Options).
	CacheBytes         int64
	FlushWorkers       int
	FlushSerial        bool
	ApplyAfterSync     bool
	MaxUnflushedBytes  int64
	MaxConflictRetries int
	NoSync             bool

	// Protocol limits.
	MaxBulkLen int64
	// ClientQueryBufferLimit bounds the bytes of one command's arguments
	// together (Redis's client-query-buffer-limit). Default 1 GiB.
	ClientQueryBufferLimit int64
	MaxArgs                int
	MaxClients             int
	IdleTimeout            time.Duration

	// ShutdownTimeout bounds how long a graceful shutdown waits for
	// connections to finish their in-flight commands.
	ShutdownTimeout time.Duration

	LogLevel  string
	LogFormat string

	// GCPercent is the Go garbage collector's target (GOGC) for the daemon,
	// GCMemoryLimit its soft memory limit (GOMEMLIMIT): gcLimitAuto,
	// gcLimitOff or bytes (gc.go).
	GCPercent     int
	GCMemoryLimit int64

	Cluster    clusterConfig    // the etcd log (cluster.go)
	Checkpoint checkpointConfig // checkpoints, seglog segments (checkpoint.go)
	Security   securityConfig   // password, TLS, protected mode (security.go)

	// For tests: a log to run on instead of the embedded bbolt log in
	// DataDir (the caller owns it), and a logger.
	log    log.Log
	logger *slog.Logger
	// For tests: the clock expiry is decided by (unix ms; nil: the wall
	// clock), and how often the sweeper runs (0: every 100 ms; negative:
	// never, a test calls it).
	clock         func() int64
	sweepInterval time.Duration
}

func defaultConfig() config {
	d := cruzdb.DefaultOptions()
	return config{
		DataDir:                "./cruzd-data",
		ListenAddr:             "127.0.0.1:7379",
		AdminAddr:              "127.0.0.1:7380",
		CacheBytes:             d.CacheBytes,
		FlushWorkers:           d.FlushWorkers,
		MaxUnflushedBytes:      d.MaxUnflushedBytes,
		MaxConflictRetries:     10, // cruzd's own retry loops; cruzdb.Update retries until its context ends
		MaxBulkLen:             64 << 20,
		ClientQueryBufferLimit: 1 << 30,
		MaxArgs:                1 << 20,
		MaxClients:             10000,
		ShutdownTimeout:        30 * time.Second,
		LogLevel:               "info",
		LogFormat:              "text",
		GCPercent:              defaultGCPercent,
		GCMemoryLimit:          gcLimitAuto,
		Cluster:                defaultClusterConfig(),
		Security:               defaultSecurityConfig(),
		Checkpoint:             defaultCheckpointConfig(),
	}
}

// envName is the environment variable that sets a flag: CRUZD_ and the
// flag's name in upper case with '-' as '_'.
func envName(flagName string) string {
	return "CRUZD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag of fs that has an environment variable from it.
// Call it before fs.Parse, so that a flag on the command line wins.
func applyEnv(fs *flag.FlagSet, getenv func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := getenv(envName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for %s: %v", v, envName(f.Name), err))
		}
	})
	return errors.Join(errs...)
}

// usage prints a command's help: its synopsis and every flag with its
// default and environment variable.
func usage(fs *flag.FlagSet, w io.Writer, synopsis string) {
	fmt.Fprintln(w, synopsis)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Flags (each also read from the environment variable shown; a flag on the command line wins):")
	fs.VisitAll(func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintln(w, line)
		fmt.Fprintf(w, "      %s\n", strings.ReplaceAll(text, "\n", "\n      "))
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "      default %s; env %s\n", def, envName(f.Name))
	})
}

// byteSize is a flag value in bytes that accepts a unit suffix: 64MiB,
// 512KiB, 1GiB, 100MB, 10kB or a plain number of bytes.
type byteSize struct{ p *int64 }

func (b byteSize) String() string {
	if b.p == nil {
		return "0"
	}
	return formatBytes(*b.p)
}

func (b byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b.p = n
	return nil
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

func parseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a byte size: %q (want e.g. 1048576, 64MiB, 512KiB, 1GiB)", s)
	}
	if n > 0 && mult > (1<<63-1)/n {
		return 0, fmt.Errorf("byte size %q overflows", s)
	}
	return n * mult, nil
}

func formatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// serveFlags defines the serve command's flags on fs, writing into c.
func serveFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the database (its log: `dir`/"+cruzdb.SegLogDirName+"/, or "+cruzdb.LogFileName+" if that exists); created if missing")
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "`host:port` of the Redis protocol (RESP2) listener")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "`host:port` of the admin HTTP server (/metrics, /healthz, /debug/pprof); empty disables it")
	fs.Var(byteSize{&c.CacheBytes}, "cache-bytes", "memory for clean cached tree `bytes` (cruzdb Options.CacheBytes)")
	fs.IntVar(&c.FlushWorkers, "flush-workers", c.FlushWorkers, "afterimages written in parallel (cruzdb Options.FlushWorkers)")
	fs.BoolVar(&c.FlushSerial, "flush-serial", c.FlushSerial, "flush one afterimage at a time with physical pointers only (cruzdb Options.FlushSerial)")
	fs.BoolVar(&c.ApplyAfterSync, "apply-after-sync", c.ApplyAfterSync, "apply intentions only after their group's fdatasync, not while the log syncs them; the decisions are the same (cruzdb Options.ApplyAfterSync)")
	fs.Var(byteSize{&c.MaxUnflushedBytes}, "max-unflushed-bytes", "committed but unflushed delta `bytes` before commits wait for the flusher (cruzdb Options.MaxUnflushedBytes)")
	fs.IntVar(&c.MaxConflictRetries, "max-conflict-retries", c.MaxConflictRetries, "how often a plain command, a pipeline batch or an EXEC is re-run after a conflict on an unwatched key before it fails")
	fs.BoolVar(&c.NoSync, "no-sync", c.NoSync, "do not fsync the log: FOR TESTS ONLY, a machine crash loses acknowledged writes")
	fs.Var(byteSize{&c.MaxBulkLen}, "max-bulk-len", "largest bulk string (argument) a client may send, in `bytes`; larger is a protocol error")
	fs.Var(byteSize{&c.ClientQueryBufferLimit}, "client-query-buffer-limit", "most `bytes` of one command's arguments together (Redis's client-query-buffer-limit); more is a protocol error and the connection is closed")
	fs.IntVar(&c.MaxArgs, "max-args", c.MaxArgs, "most arguments in one command; more is a protocol error")
	fs.IntVar(&c.MaxClients, "max-clients", c.MaxClients, "most simultaneous client connections; more are refused with an error")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "close a client connection idle this long (0: never)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "on SIGINT/SIGTERM, how long to wait for in-flight commands before closing connections")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log `format`: text or json (log/slog, on standard error)")
	clusterFlags(fs, &c.Cluster)
	securityFlags(fs, &c.Security)
	checkpointFlags(fs, &c.Checkpoint)
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "Go garbage collector target (GOGC) for the daemon: a SET's garbage is mostly tree nodes and each collection marks the whole tree, so each doubling above Go's 100 halves collections for a heap of up to 1+gc-percent/100 times the live one (--gc-memory-limit bounds it); the GOGC environment variable, when set, wins")
	fs.Var(gcLimit{&c.GCMemoryLimit}, "gc-memory-limit", "the Go runtime's soft memory `limit` (GOMEMLIMIT): auto (3 times the sum of --cache-bytes and --max-unflushed-bytes, plus 256MiB: a full cache takes no more than at --gc-percent 200), off, or a byte size; the GOMEMLIMIT environment variable, when set, wins")
}

func (c *config) validate() error {
	switch {
	case c.GCPercent < 10:
		return errors.New("--gc-percent must be at least 10")
	case c.DataDir == "" && c.log == nil && !c.Cluster.enabled():
		return errors.New("--data-dir must not be empty")
	case c.ListenAddr == "":
		return errors.New("--listen-addr must not be empty")
	case c.FlushWorkers < 0:
		return fmt.Errorf("--flush-workers %d is negative", c.FlushWorkers)
	case c.MaxBulkLen < 1:
		return fmt.Errorf("--max-bulk-len %d must be at least 1", c.MaxBulkLen)
	case c.ClientQueryBufferLimit < 1:
		return fmt.Errorf("--client-query-buffer-limit %d must be at least 1", c.ClientQueryBufferLimit)
	case c.MaxArgs < 1:
		return fmt.Errorf("--max-args %d must be at least 1", c.MaxArgs)
	case c.MaxClients < 1:
		return fmt.Errorf("--max-clients %d must be at least 1", c.MaxClients)
	case c.IdleTimeout < 0:
		return fmt.Errorf("--idle-timeout %v is negative", c.IdleTimeout)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("--shutdown-timeout %v is negative", c.ShutdownTimeout)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if err := c.Checkpoint.validate(); err != nil {
		return err
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	if err := c.Security.validate(c.ListenAddr, c.AdminAddr); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, _ := parseLevel(level)
	o := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// dbOptions are the cruzdb options the config asks for.
func (c *config) dbOptions(logger *slog.Logger) cruzdb.Options {
	o := cruzdb.Options{
		NoSync:             c.NoSync,
		CacheBytes:         c.CacheBytes,
		FlushWorkers:       c.FlushWorkers,
		FlushSerial:        c.FlushSerial,
		ApplyAfterSync:     c.ApplyAfterSync,
		MaxUnflushedBytes:  c.MaxUnflushedBytes,
		MaxConflictRetries: c.MaxConflictRetries,
		Logger:             logger,
	}
	if o.MaxConflictRetries == 0 {
		o.MaxConflictRetries = -1 // cruzdb: 0 means the default, negative none
	}
	c.Checkpoint.apply(&o)
	return o
}

func lookupEnv(k string) (string, bool) { return os.LookupEnv(k) }

// parseArgs sets fs from CRUZD_* variables, then from args (which win). ok
// false means the command ends with code: 0 after --help, 2 on bad input
// (the error is written to stderr, prefixed with prog).
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer, prog string) (code int, ok bool) {
	if err := applyEnv(fs, lookupEnv); err != nil {
		fmt.Fprintln(stderr, prog+":", err)
		return 2, false
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments: %q\n", prog, fs.Args())
		return 2, false
	}
	return 0, true
}
