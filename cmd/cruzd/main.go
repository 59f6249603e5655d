// Command cruzd serves a cruzdb database over the Redis protocol (RESP2),
// so that redis-cli, redis-benchmark and every Redis client library can use
// it, with an admin HTTP server for metrics, health and profiling.
//
//	cruzd [serve] [flags]                         run the daemon
//	cruzd inspect --data-dir DIR [--from P] [--to P]  decode and print the log
//	cruzd copylog --from DIR --to DIR [--backend B]   copy a log to another backend
//
// Every flag can also be set with an environment variable: CRUZD_ and the
// flag's name in upper case with '-' as '_' (--data-dir: CRUZD_DATA_DIR).
// A flag on the command line wins. `cruzd serve --help` lists them all.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, returning the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-v") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(args, stderr)
	case "inspect":
		return runInspect(args, stdout, stderr)
	case "copylog":
		return runCopyLog(args, stdout, stderr)
	case "backup":
		return runBackup(args, stdout, stderr)
	case "restore":
		return runRestore(args, stdout, stderr)
	case "help":
		topUsage(stdout)
		return 0
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "cruzd", version)
		return 0
	}
	fmt.Fprintf(stderr, "cruzd: unknown command %q\n\n", cmd)
	topUsage(stderr)
	return 2
}

func topUsage(w io.Writer) {
	fmt.Fprint(w, `cruzd: a cruzdb database served over the Redis protocol.

Usage:
  cruzd [serve] [flags]                              run the daemon (default)
  cruzd inspect --data-dir DIR [--from P] [--to P]   decode and print the log
  cruzd inspect --addr ADMIN_ADDR [...]              the same, of a running cruzd
  cruzd copylog --from DIR --to DIR [--backend B]    copy a log to another backend
  cruzd backup --addr ADMIN_ADDR --out FILE          copy a running cruzd's snapshot
  cruzd restore --in FILE --data-dir DIR             load a backup into a new database
  cruzd version (or --version, -v)                   print the version

Run "cruzd serve --help" or "cruzd inspect --help" for the flags.
`)
}

func runServe(args []string, stderr io.Writer) int {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("cruzd serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serveFlags(fs, &cfg)
	fs.Usage = func() {
		usage(fs, stderr, "Usage: cruzd [serve] [flags]\n\nServes the database in --data-dir over the Redis protocol (RESP2) on --listen-addr,\nwith /metrics, /healthz and /debug/pprof on --admin-addr. SIGINT or SIGTERM shuts it\ndown gracefully (in-flight commands finish, the database is flushed and closed);\na second signal exits at once.")
	}
	if code, ok := parseArgs(fs, args, stderr, "cruzd"); !ok {
		return code
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(stderr, "cruzd:", err)
		return 2
	}
	logger := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	cfg.logger = logger
	applyGCPolicy(&cfg, os.Getenv)
	if cfg.NoSync {
		logger.Warn("--no-sync: the log is not fsynced; a machine crash loses acknowledged writes (for tests only)")
	}

	// Signals: the first starts a graceful shutdown, a second exits at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	s, err := newServer(cfg)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := s.Start(); err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	sig := <-sigs
	logger.Info("shutting down", "signal", sig.String(), "timeout", cfg.ShutdownTimeout)
	go func() {
		sig := <-sigs
		logger.Error("second signal: exiting without a graceful shutdown", "signal", sig.String())
		os.Exit(1)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	t0 := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		logger.Error("shutdown", "err", err)
		return 1
	}
	logger.Info("stopped", "took", time.Since(t0).Round(time.Millisecond))
	return 0
}
