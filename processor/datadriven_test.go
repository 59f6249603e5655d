package processor_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/testutil/fixture"
	"github.com/cruzlog/cruzdb/processor"
)

// TestRuleScripts runs the scripts in testdata/rule: the commit rule as
// examples a reader can follow (and extend) without reading Go. Commands:
//
//	new window=N [maxkey=N] [maxvalue=N]
//	    a fresh state after position 0 (the header) under those limits
//	    (maxkey 32, maxvalue 4096 unless given)
//	intention pos=P snap=S [read=K | read=(K,...)] [range=[LO,HI) ...]
//	          [put=K=V | put=(K=V,...)] [del=K | del=(K,...)]
//	          [delrange=[LO,HI)]
//	    the processor's decision on that intention at P: "commit",
//	    "conflict key=K at=Q", "too old" or "invalid: why". Positions
//	    between the last one and P hold no intention (afterimages, junk).
//	    An empty LO or HI is unbounded.
//	state
//	    every entry of the tree as key@position=value (a delete leaves
//	    key@position=<tomb>), then the position the state is after
//
// Rewrite the expected output after a deliberate change with
// `go test ./processor -run TestRuleScripts -rewrite`.
func TestRuleScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/rule", func(t *testing.T, path string) {
		var st *processor.State
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "new":
				var window, maxKey, maxValue uint64 = 0, 32, 4096
				d.ScanArgs(t, "window", &window)
				d.MaybeScanArgs(t, "maxkey", &maxKey)
				d.MaybeScanArgs(t, "maxvalue", &maxValue)
				st = processor.NewState(fixture.Header(window, uint32(maxKey), uint32(maxValue)), cowtree.New(nil), 0)
				return "ok"
			case "intention":
				if st == nil {
					d.Fatalf(t, "intention before new")
				}
				return runIntention(t, d, st)
			case "state":
				if st == nil {
					d.Fatalf(t, "state before new")
				}
				return dumpState(t, st)
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

// runIntention builds the intention d describes, applies it and prints the
// decision.
func runIntention(t *testing.T, d *datadriven.TestData, st *processor.State) string {
	var pos, snap uint64
	d.ScanArgs(t, "pos", &pos)
	d.ScanArgs(t, "snap", &snap)
	in := &intention.Intention{Snapshot: snap}
	for _, arg := range d.CmdArgs {
		switch arg.Key {
		case "pos", "snap":
		case "read":
			for _, k := range arg.Vals {
				in.Reads = append(in.Reads, []byte(k))
			}
		case "range":
			for _, r := range arg.Vals {
				lo, hi, ok := parseRange(r)
				if !ok {
					d.Fatalf(t, "range %q: want [lo,hi)", r)
				}
				in.Ranges = append(in.Ranges, rng(lo, hi))
			}
		case "put":
			for _, kv := range arg.Vals {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					d.Fatalf(t, "put %q: want key=value", kv)
				}
				in.Ops = append(in.Ops, put(k, v))
			}
		case "del":
			for _, k := range arg.Vals {
				in.Ops = append(in.Ops, del(k))
			}
		case "delrange":
			for _, r := range arg.Vals {
				lo, hi, ok := parseRange(r)
				if !ok {
					d.Fatalf(t, "delrange %q: want [lo,hi)", r)
				}
				rg := rng(lo, hi)
				in.Ops = append(in.Ops, intention.Op{Kind: intention.OpDeleteRange, Key: rg.Lo, Value: rg.Hi})
			}
		default:
			d.Fatalf(t, "intention: unknown argument %q", arg.Key)
		}
	}
	if pos > st.Pos()+1 {
		if err := st.Skip(pos - 1); err != nil {
			return "error: " + err.Error()
		}
	}
	dec, delta, err := st.Apply(pos, in)
	if err != nil {
		return "error: " + err.Error()
	}
	if (dec.Outcome == processor.Committed) != (delta != nil) {
		d.Fatalf(t, "outcome %v with delta %v", dec.Outcome, delta != nil)
	}
	switch dec.Outcome {
	case processor.Committed:
		return "commit"
	case processor.Conflict:
		return fmt.Sprintf("conflict key=%s at=%d", dec.ConflictKey, dec.ConflictPos)
	case processor.TooOld:
		return "too old"
	case processor.Invalid:
		return "invalid: " + dec.Reason
	}
	return dec.Outcome.String()
}

// parseRange reads "[lo,hi)".
func parseRange(s string) (lo, hi string, ok bool) {
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, ")") {
		return "", "", false
	}
	return strings.Cut(s[1:len(s)-1], ",")
}

// dumpState prints every entry of st's tree, tombstones included, one a
// line, and the position the state is after.
func dumpState(t *testing.T, st *processor.State) string {
	entries := strings.Fields(dumpTree(t, st.Tree()))
	return strings.Join(append(entries, "after "+strconv.FormatUint(st.Pos(), 10)), "\n")
}
