// Package startup finds where a node resumes on a shared log: the newest
// safe point, an intention together with its active afterimage, so that a
// node loads the tree from that afterimage and replays only what follows.
//
// Find reads the tail, then scans backwards, filling the holes it meets,
// until it reaches the newest intention that has an afterimage after it;
// among duplicates the oldest (the active one) is kept. Scanning backwards,
// an afterimage for intention I can only lie after I, so once the scan
// reaches the highest intention named by any afterimage seen, nothing newer
// can have one. Every hole between that intention and the tail is filled
// during the scan, so an in-flight write can no longer land there with an
// earlier duplicate; a fill that loses to such a write reads the entry and
// counts it, so the choice is re-made with it. Positions at or after the
// tail seen are later than the choice and cannot change it.
//
// A checkpoint's marker counts as an afterimage of its cut based on itself
// (it proves the cut's whole tree, in the image's chunks): the scan goes
// back to the newest proven tree, an afterimage's Base or a marker's cut,
// so after a trim it never reads below the trim point, and a late
// afterimage of an intention before a cut never wins over the cut's marker.
//
// The cost of Find depends on how far the flusher lagged behind the tail,
// not on the length of the history. Local caches play no part: the log is
// the only authority (seeds/002).
package startup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
)

// SafePoint is where a node resumes.
type SafePoint struct {
	// Intention is the safe point's intention; 0 when the log has no
	// afterimage (replay from the start, on an empty tree).
	Intention uint64
	// Afterimage is the position of its active afterimage.
	Afterimage uint64
	// Root is the address of the tree's root in that afterimage (AddrNone
	// for an empty tree).
	Root cowtree.Addr
	// Tail is the log's tail when the scan began.
	Tail uint64
	// Reads and Fills count what the scan did.
	Reads, Fills uint64
	// Marker is set when the safe point is a checkpoint: Intention is then
	// the cut, Afterimage its first complete marker, and Root node n-1 of
	// the cut's image (an intention address, resolved through the marker).
	Marker *entry.Marker
}

// ErrNoSafePoint: the log was trimmed above every afterimage the scan could
// see, so no state can be rebuilt.
var ErrNoSafePoint = errors.New("startup: no safe point above the trimmed part of the log")

// Find scans l backwards for the newest safe point. A corrupt entry stops it
// with an error wrapping entry.ErrCorrupt that names the position: it is
// never skipped or filled over.
func Find(ctx context.Context, l log.Log, logger *slog.Logger) (SafePoint, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tail, err := l.Tail(ctx)
	if err != nil {
		return SafePoint{}, fmt.Errorf("startup: read tail: %w", err)
	}
	sp := SafePoint{Tail: uint64(tail)}
	var best uint64                       // highest intention named by an afterimage seen
	oldest := map[uint64]uint64{}         // intention -> oldest afterimage seen
	nodes := map[uint64]int{}             // afterimage position -> node count
	bases := map[uint64]uint64{}          // afterimage position -> its Base
	markers := map[uint64]*entry.Marker{} // marker position -> marker
	safe := uint64(0)                     // the newest tree proven so far
	trimmed := false                      // the log's start is trimmed: replay from it is impossible
	for p := uint64(tail); p > 1; {
		p--
		// Everything above safe has been read once p reaches it, so its
		// active afterimage (or marker) is known. While no tree is proven
		// but some afterimage was seen, stop at the newest intention named
		// (no newer one can have an afterimage): replay from the start.
		// Unless the start is trimmed: then a checkpoint's marker below
		// (those afterimages' Base being older than its cut) is the only
		// way on, and the scan goes on to find it.
		if safe != 0 && p <= safe {
			break
		}
		if safe == 0 && best != 0 && p <= best && !trimmed {
			_, err := l.Read(ctx, 1)
			sp.Reads++
			if !errors.Is(err, log.ErrTrimmed) {
				break
			}
			trimmed = true
		}
		data, err := l.Read(ctx, log.Position(p))
		sp.Reads++
		switch {
		case err == nil:
		case errors.Is(err, log.ErrFilled):
			continue
		case errors.Is(err, log.ErrNotWritten):
			// A hole below the tail: a slow or dead writer. Fill it so it
			// can never receive an earlier duplicate of our choice.
			ferr := l.Fill(ctx, log.Position(p))
			switch {
			case ferr == nil:
				sp.Fills++
				continue
			case errors.Is(ferr, log.ErrWritten):
				p++ // the writer landed meanwhile: read it
				continue
			default:
				return SafePoint{}, fmt.Errorf("startup: fill hole at %d: %w", p, ferr)
			}
		case errors.Is(err, log.ErrTrimmed):
			if best == 0 {
				return SafePoint{}, fmt.Errorf("%w (trimmed at %d)", ErrNoSafePoint, p)
			}
			return SafePoint{}, fmt.Errorf("startup: position %d trimmed above the safe point's intention %d: %w", p, best, ErrNoSafePoint)
		default:
			return SafePoint{}, fmt.Errorf("startup: read %d: %w", p, err)
		}
		typ, payload, err := entry.Decode(p, data)
		if err != nil {
			return SafePoint{}, err
		}
		if typ == entry.TypeCheckpoint {
			// A marker proves its cut's whole tree, as an afterimage of an
			// intention based on itself does.
			if k, err := entry.CheckpointKind(payload); err != nil {
				return SafePoint{}, entry.Corrupt(p, err)
			} else if k != entry.CheckpointMarker {
				continue
			}
			m, err := entry.DecodeMarker(payload)
			if err != nil {
				return SafePoint{}, entry.Corrupt(p, err)
			}
			if m.Cut >= p || len(m.Chunks) > 0 && m.Chunks[len(m.Chunks)-1].Pos >= p {
				return SafePoint{}, fmt.Errorf("startup: marker at %d names a cut or chunk not before it: %w", p, entry.ErrCorrupt)
			}
			oldest[m.Cut] = p
			markers[p] = m
			bases[p] = m.Cut
			best = max(best, m.Cut)
			safe = max(safe, m.Cut)
			continue
		}
		if typ != entry.TypeAfterimage {
			continue
		}
		// The header is all the scan needs (replay reads no more of an
		// afterimage either); the chosen one's nodes are decoded, and
		// checked, when the tree loads them.
		in, base, count, err := afterimage.DecodeHeader(payload)
		if err != nil {
			return SafePoint{}, entry.Corrupt(p, err)
		}
		if in >= p {
			return SafePoint{}, fmt.Errorf("startup: afterimage at %d names intention %d, not before it: %w", p, in, entry.ErrCorrupt)
		}
		oldest[in] = p // scanning backwards: the last seen is the oldest
		nodes[p] = count
		bases[p] = base
		best = max(best, in)
		safe = max(safe, base)
	}
	// An afterimage of intention I proves that the tree of its Base is
	// wholly in the log (Base == I when every earlier delta was confirmed
	// when it was written); a marker proves its cut's tree. A crash may have
	// kept an unconfirmed earlier delta from ever being written, so a newer
	// afterimage's own tree may point at one that does not exist: resume
	// from the newest proven tree, and let replay make the rest again. A
	// late afterimage of an intention before a checkpoint's cut is based
	// below the cut, so it never wins over the checkpoint's marker.
	if safe == 0 {
		logger.Info("startup: no safe point; replaying from the start", "tail", sp.Tail, "reads", sp.Reads, "fills", sp.Fills)
		return SafePoint{Tail: sp.Tail, Reads: sp.Reads, Fills: sp.Fills}, nil
	}
	at, ok := oldest[safe]
	if !ok {
		return SafePoint{}, fmt.Errorf("startup: no afterimage for position %d, which a newer afterimage names as its base: %w", safe, entry.ErrCorrupt)
	}
	data, err := l.Read(ctx, log.Position(safe))
	sp.Reads++
	if err != nil {
		return SafePoint{}, fmt.Errorf("startup: read safe point %d: %w", safe, err)
	}
	typ, payload, err := entry.Decode(safe, data)
	if err != nil {
		return SafePoint{}, err
	}
	sp.Intention, sp.Afterimage = safe, at
	if m := markers[at]; m != nil {
		if k, err := entry.CheckpointKind(payload); typ != entry.TypeCheckpoint || err != nil || k != entry.CheckpointCut {
			return SafePoint{}, fmt.Errorf("startup: marker at %d names position %d, which holds no checkpoint cut: %w", at, safe, entry.ErrCorrupt)
		}
		sp.Marker = m
		if m.Nodes > 0 {
			sp.Root = cowtree.Addr{Kind: cowtree.AddrIntention, Pos: safe, Off: uint32(m.Nodes - 1)}
		}
	} else {
		if typ != entry.TypeIntention {
			return SafePoint{}, fmt.Errorf("startup: afterimage names position %d, which holds a %v: %w", safe, typ, entry.ErrCorrupt)
		}
		if n := nodes[at]; n > 0 {
			sp.Root = cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: at, Off: uint32(n - 1)}
		}
	}
	logger.Info("startup: safe point found", "position", sp.Intention, "afterimage", sp.Afterimage, "checkpoint", sp.Marker != nil, "tail", sp.Tail, "reads", sp.Reads, "fills", sp.Fills)
	return sp, nil
}
