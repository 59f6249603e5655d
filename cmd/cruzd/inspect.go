package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/cruzlog/cruzdb/internal/inspect"
	"github.com/cruzlog/cruzdb/log"
)

// positionFlag is an optional log position.
type positionFlag struct {
	v   uint64
	set bool
}

func (p *positionFlag) String() string {
	if !p.set {
		return ""
	}
	return strconv.FormatUint(p.v, 10)
}

func (p *positionFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not a log position: %q", s)
	}
	p.v, p.set = v, true
	return nil
}

func runInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cruzd inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data-dir", "./cruzd-data", "database `directory` whose log to print")
	var from, to positionFlag
	fs.Var(&from, "from", "first log `position` to print (default 0)")
	fs.Var(&to, "to", "last log `position` to print (default the last written)")
	verbose := fs.Bool("verbose", false, "also print each intention's keys and each afterimage's nodes")
	addr := fs.String("addr", "", "`host:port` of a running cruzd's admin server (--admin-addr) to inspect instead of --data-dir, read-only while it runs")
	pass := fs.String("requirepass", "", "the running cruzd's --requirepass `password`, for --addr (set it through CRUZD_REQUIREPASS to keep it out of process listings)")
	fs.Usage = func() {
		usage(fs, stderr, "Usage: cruzd inspect (--data-dir DIR | --addr ADMIN_ADDR) [--from P] [--to P] [--verbose]\n\nDecodes and prints every log position: its entry type; an intention's snapshot and\nread, range and write counts; an afterimage's intention, node count and pointer kinds;\njunk (filled) positions, holes, trimmed positions, and corrupt entries with the error.\nWith --data-dir, stop cruzd first: the log file is locked while it runs.\nWith --addr, the running cruzd's admin server reads its log for you: same output.")
	}
	if code, ok := parseArgs(fs, args, stderr, "cruzd inspect"); !ok {
		return code
	}
	var l log.Log
	if *addr != "" {
		l = newLiveLog(*addr, *pass, from, to, logPageEntries)
	} else {
		// Neither backend has a read-only mode; opening writes nothing to
		// an existing log, and openExistingLog creates none.
		ol, _, err := openExistingLog(*dir)
		if err != nil {
			fmt.Fprintln(stderr, "cruzd inspect:", err)
			return 1
		}
		l = ol
	}
	defer l.Close()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	var last *uint64
	if to.set {
		last = &to.v
	}
	if err := inspect.Log(context.Background(), l, w, from.v, last, *verbose); err != nil {
		w.Flush()
		fmt.Fprintln(stderr, "cruzd inspect:", err)
		return 1
	}
	return 0
}
