package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
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
	fs.Usage = func() {
		usage(fs, stderr, "Usage: cruzd inspect --data-dir DIR [--from P] [--to P] [--verbose]\n\nDecodes and prints every log position: its entry type; an intention's snapshot and\nread, range and write counts; an afterimage's intention, node count and pointer kinds;\njunk (filled) positions, holes, trimmed positions, and corrupt entries with the error.\nStop cruzd first: the log file is locked while it runs.")
	}
	if code, ok := parseArgs(fs, args, stderr, "cruzd inspect"); !ok {
		return code
	}
	// Neither backend has a read-only mode; opening writes nothing to an
	// existing log, and openExistingLog creates none.
	l, _, err := openExistingLog(*dir)
	if err != nil {
		fmt.Fprintln(stderr, "cruzd inspect:", err)
		return 1
	}
	defer l.Close()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if err := inspectLog(context.Background(), l, w, from, to, *verbose); err != nil {
		w.Flush()
		fmt.Fprintln(stderr, "cruzd inspect:", err)
		return 1
	}
	return 0
}

// inspectSummary counts what inspectLog printed.
type inspectSummary struct {
	header, intentions, afterimages, checkpoints, junk, holes, trimmed, corrupt, other int
	ptrs                                                                               afterimage.PointerCounts
	nodes                                                                              int
}

// inspectLog prints positions [from, to] of l to w.
func inspectLog(ctx context.Context, l log.Log, w io.Writer, from, to positionFlag, verbose bool) error {
	tail, err := l.Tail(ctx)
	if err != nil {
		return fmt.Errorf("read tail: %w", err)
	}
	fmt.Fprintf(w, "log tail %d\n", tail)
	if tail == 0 {
		fmt.Fprintln(w, "(empty log)")
		return nil
	}
	last := uint64(tail) - 1
	if to.set && to.v < last {
		last = to.v
	}
	var sum inspectSummary
	trimStart, inTrim := uint64(0), false
	flushTrim := func(end uint64) {
		if inTrim {
			if end == trimStart {
				fmt.Fprintf(w, "%d\ttrimmed\n", trimStart)
			} else {
				fmt.Fprintf(w, "%d-%d\ttrimmed\n", trimStart, end)
			}
			inTrim = false
		}
	}
	for p := from.v; p <= last; p++ {
		data, err := l.Read(ctx, log.Position(p))
		if errors.Is(err, log.ErrTrimmed) {
			sum.trimmed++
			if !inTrim {
				trimStart, inTrim = p, true
			}
			continue
		}
		flushTrim(p - 1)
		switch {
		case errors.Is(err, log.ErrFilled):
			sum.junk++
			fmt.Fprintf(w, "%d\tjunk\n", p)
		case errors.Is(err, log.ErrNotWritten):
			sum.holes++
			fmt.Fprintf(w, "%d\thole (not written)\n", p)
		case err != nil:
			return fmt.Errorf("read position %d: %w", p, err)
		default:
			printEntry(w, p, data, verbose, &sum)
		}
	}
	flushTrim(last)
	fmt.Fprintf(w, "summary: header %d, intentions %d, afterimages %d (nodes %d; pointers nil %d self %d afterimage %d intention %d), checkpoints %d, junk %d, holes %d, trimmed %d, corrupt %d, other %d\n",
		sum.header, sum.intentions, sum.afterimages, sum.nodes, sum.ptrs.Nil, sum.ptrs.Self, sum.ptrs.Afterimage, sum.ptrs.Intention,
		sum.checkpoints, sum.junk, sum.holes, sum.trimmed, sum.corrupt, sum.other)
	return nil
}

func printEntry(w io.Writer, p uint64, data []byte, verbose bool, sum *inspectSummary) {
	t, _, err := entry.Decode(p, data)
	if err != nil {
		sum.corrupt++
		fmt.Fprintf(w, "%d\tcorrupt\t%d bytes\t%v\n", p, len(data), err)
		return
	}
	switch t {
	case entry.TypeHeader:
		h, err := entry.DecodeHeaderEntry(p, data)
		if err != nil {
			sum.corrupt++
			fmt.Fprintf(w, "%d\tcorrupt\theader: %v\n", p, err)
			return
		}
		sum.header++
		fmt.Fprintf(w, "%d\theader\tformat %d, conflict window %d, max key %d, max value %d\n",
			p, h.FormatVersion, h.ConflictWindow, h.MaxKeySize, h.MaxValueSize)
	case entry.TypeIntention:
		in, err := entry.DecodeIntentionEntry(p, data)
		if err != nil {
			sum.corrupt++
			fmt.Fprintf(w, "%d\tcorrupt\tintention: %v\n", p, err)
			return
		}
		sum.intentions++
		puts, dels := 0, 0
		for _, op := range in.Ops {
			if op.Kind == intention.OpDelete {
				dels++
			} else {
				puts++
			}
		}
		fmt.Fprintf(w, "%d\tintention\tsnapshot %d, reads %d, ranges %d, ops %d (put %d, delete %d), %d bytes\n",
			p, in.Snapshot, len(in.Reads), len(in.Ranges), len(in.Ops), puts, dels, len(data))
		if verbose {
			for _, k := range in.Reads {
				fmt.Fprintf(w, "\t\tread %s\n", quoteKey(k))
			}
			for _, r := range in.Ranges {
				fmt.Fprintf(w, "\t\trange [%s, %s)\n", quoteBound(r.Lo, "-inf"), quoteBound(r.Hi, "+inf"))
			}
			for _, op := range in.Ops {
				if op.Kind == intention.OpDelete {
					fmt.Fprintf(w, "\t\tdelete %s\n", quoteKey(op.Key))
				} else {
					fmt.Fprintf(w, "\t\tput %s (%d bytes)\n", quoteKey(op.Key), len(op.Value))
				}
			}
		}
	case entry.TypeAfterimage:
		a, err := entry.DecodeAfterimageEntry(p, data)
		if err != nil {
			sum.corrupt++
			fmt.Fprintf(w, "%d\tcorrupt\tafterimage: %v\n", p, err)
			return
		}
		sum.afterimages++
		pc := a.PointerCounts()
		sum.ptrs.Add(pc)
		sum.nodes += len(a.Nodes)
		fmt.Fprintf(w, "%d\tafterimage\tintention %d, nodes %d, pointers nil %d self %d afterimage %d intention %d, %d bytes\n",
			p, a.Intention, len(a.Nodes), pc.Nil, pc.Self, pc.Afterimage, pc.Intention, len(data))
		if verbose {
			for i := range a.Nodes {
				fmt.Fprintf(w, "\t\t%d: %s\n", i, a.Nodes[i].String())
			}
		}
	case entry.TypeCheckpoint:
		sum.checkpoints++
		fmt.Fprintf(w, "%d\tcheckpoint\t%d bytes\n", p, len(data))
	default:
		sum.other++
		fmt.Fprintf(w, "%d\t%s\t%d bytes\n", p, t, len(data))
	}
}

func quoteKey(k []byte) string {
	if len(k) > 64 {
		return strconv.Quote(string(k[:64])) + "..."
	}
	return strconv.Quote(string(k))
}

func quoteBound(b []byte, inf string) string {
	if b == nil {
		return inf
	}
	return quoteKey(b)
}
