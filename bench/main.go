// Command bench runs cruzdb's experiments:
//
//	cd bench && go run . <experiment>... [flags]
//
// Experiments: flush, replay, commit, read, startup, resp, workload, or all.
// Each prints a Markdown table on stdout and writes CSV and SVG files under
// --out; progress goes to stderr. See RESULTS.md for the latest full run.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/cruzlog/cruzdb/bench/suite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg suite.Config
	fs.BoolVar(&cfg.Quick, "quick", false, "seconds-long smoke run of each experiment")
	fs.StringVar(&cfg.Out, "out", "results", "directory for CSV, SVG and machine.md")
	fs.StringVar(&cfg.DataDir, "data", os.TempDir(), "directory for on-disk databases (on the disk you want to measure)")
	fs.IntVar(&cfg.Runs, "runs", 1, "repeat every measurement N times; tables show the median and spread")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of every random key and value")
	fs.StringVar(&cfg.CruzdBin, "cruzd", "", "cruzd binary for the resp experiment (default: build ../cmd/cruzd)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	memlimit := fs.Int64("memlimit", 12<<10, "soft memory limit of the run in MiB (runtime/debug.SetMemoryLimit), so that the 1M-key runs leave the machine room")
	inside := fs.String("inside", "", "checkpoint: run only the inside-vs-outside part, for these comma-separated tree `sizes` (e.g. 1000000)")
	insideLogs := fs.String("inside-logs", "", "checkpoint: the logs of the inside-vs-outside part, comma-separated (default seglog,memlog)")
	fs.StringVar(&cfg.InsideProfile, "inside-profile", "", "checkpoint: write CPU profiles of each checkpoint and of the stretch after it to `prefix`-<keys>-<log>-ckpt<k>.prof and -after<k>.prof")
	memprofile := fs.String("memprofile", "", "write an allocation profile at the end of the run to `file`")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run . <experiment>... [flags]\n\nexperiments (or all):\n")
		for _, x := range suite.Experiments {
			fmt.Fprintf(fs.Output(), "  %-9s %s\n", x.Name, x.Doc)
		}
		fmt.Fprintf(fs.Output(), "\nflags:\n")
		fs.PrintDefaults()
	}
	// Flags may come before or after the experiment names.
	var names []string
	args := os.Args[1:]
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil
			}
			return err
		}
		args = fs.Args()
		if len(args) > 0 {
			names = append(names, args[0])
			args = args[1:]
		}
	}
	if len(names) == 0 {
		fs.Usage()
		return fmt.Errorf("name an experiment (%s) or all", strings.Join(suite.Names(), ", "))
	}
	if len(names) == 1 && names[0] == "all" {
		names = suite.Names()
	}
	cfg.Stdout, cfg.Progress = os.Stdout, os.Stderr
	for _, f := range strings.FieldsFunc(*inside, func(r rune) bool { return r == ',' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return fmt.Errorf("-inside: %q is not a tree size", f)
		}
		cfg.InsideKeys = append(cfg.InsideKeys, n)
	}
	for _, f := range strings.FieldsFunc(*insideLogs, func(r rune) bool { return r == ',' }) {
		if f != "seglog" && f != "memlog" {
			return fmt.Errorf("-inside-logs: %q is neither seglog nor memlog", f)
		}
		cfg.InsideLogs = append(cfg.InsideLogs, f)
	}
	if *memlimit > 0 {
		debug.SetMemoryLimit(*memlimit << 20)
	}
	if *cpuprofile != "" && cfg.InsideProfile != "" {
		return fmt.Errorf("-cpuprofile and -inside-profile exclude each other")
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	env, err := suite.NewEnv(cfg)
	if err != nil {
		return err
	}
	if err := env.Run(names...); err != nil {
		return err
	}
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "wrote %d files under %s\n", len(env.Written()), cfg.Out)
	return nil
}
