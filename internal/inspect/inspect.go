// Package inspect prints a cruzdb log position by position: the header,
// intentions with their read and write counts, afterimages with node and
// pointer counts, junk, holes, trimmed and corrupt entries. It reads through
// log.Log only, so it works on any backend.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
)

// summary counts what Log printed.
type summary struct {
	header, intentions, afterimages, checkpoints, junk, holes, trimmed, corrupt, other int
	ptrs                                                                               afterimage.PointerCounts
	nodes                                                                              int
}

// Log prints positions [from, to] of l to w (to nil: up to the last
// written), then a summary line. Only a failed read of the tail or of a
// position is an error; corrupt entries are printed and counted.
func Log(ctx context.Context, l log.Log, w io.Writer, from uint64, to *uint64, verbose bool) error {
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
	if to != nil && *to < last {
		last = *to
	}
	var sum summary
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
	for p := from; p <= last; p++ {
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

func printEntry(w io.Writer, p uint64, data []byte, verbose bool, sum *summary) {
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
		puts, dels, rangeDels := 0, 0, 0
		for _, op := range in.Ops {
			switch op.Kind {
			case intention.OpDelete:
				dels++
			case intention.OpDeleteRange:
				rangeDels++
			default:
				puts++
			}
		}
		fmt.Fprintf(w, "%d\tintention\tsnapshot %d, reads %d, ranges %d, ops %d (put %d, delete %d", p, in.Snapshot, len(in.Reads), len(in.Ranges), len(in.Ops), puts, dels)
		if rangeDels > 0 {
			fmt.Fprintf(w, ", delete range %d", rangeDels)
		}
		fmt.Fprintf(w, "), %d bytes\n", len(data))
		if verbose {
			for _, k := range in.Reads {
				fmt.Fprintf(w, "\t\tread %s\n", quoteKey(k))
			}
			for _, r := range in.Ranges {
				fmt.Fprintf(w, "\t\trange [%s, %s)\n", quoteBound(r.Lo, "-inf"), quoteBound(r.Hi, "+inf"))
			}
			for _, op := range in.Ops {
				switch op.Kind {
				case intention.OpDelete:
					fmt.Fprintf(w, "\t\tdelete %s\n", quoteKey(op.Key))
				case intention.OpDeleteRange:
					fmt.Fprintf(w, "\t\tdelete range [%s, %s)\n", quoteKey(op.Key), quoteBound(op.Value, "+inf"))
				default:
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
		fmt.Fprintf(w, "%d\tcheckpoint\t%s, %d bytes\n", p, describeCheckpoint(data), len(data))
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

// describeCheckpoint says what a checkpoint entry is: a cut, a chunk of an
// image, or the marker that completes one.
func describeCheckpoint(data []byte) string {
	_, payload, err := entry.Decode(0, data)
	if err != nil {
		return "corrupt"
	}
	kind, err := entry.CheckpointKind(payload)
	if err != nil {
		return fmt.Sprintf("malformed (%v)", err)
	}
	switch kind {
	case entry.CheckpointCut:
		if _, h, err := entry.DecodeCut(payload); err == nil {
			return fmt.Sprintf("cut (the image of the state here; header: conflict window %d)", h.ConflictWindow)
		}
	case entry.CheckpointChunk:
		if first, ai, err := entry.DecodeChunk(payload); err == nil {
			if a, err := afterimage.DecodeNoCopy(ai); err == nil {
				return fmt.Sprintf("image chunk of cut %d: nodes %d-%d", a.Intention, first, first+uint64(len(a.Nodes))-1)
			}
		}
	case entry.CheckpointMarker:
		if m, err := entry.DecodeMarker(payload); err == nil {
			return fmt.Sprintf("marker of cut %d: image complete, %d nodes in %d chunks (%d bytes)", m.Cut, m.Nodes, len(m.Chunks), m.Bytes)
		}
	}
	return "malformed"
}
