package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/cruzlog/cruzdb/log"
)

// Inspecting a running cruzd.
//
// GET /log?from=P&to=P[&max=N] on the admin server reads positions of the
// running database's log (Read per position, nothing written) and streams
// them in pages: each position as data, junk (filled), a hole (not
// written) or a run of trimmed positions, then an end record naming the
// first position the page did not cover. `cruzd inspect --addr` reads the
// pages through liveLog, a read-only log.Log, and prints them with
// internal/inspect exactly as --data-dir does.
//
// Stream: the magic "CRUZLOG1", then records of a status byte, a uvarint
// position and a uvarint n: n bytes of data follow a data record; n is the
// length of a trimmed run; n bytes of message follow an error record; the
// end record's position is the next one to ask for, its n 0.

const (
	logMagic = "CRUZLOG1"

	recData    = 'd'
	recFilled  = 'f'
	recHole    = 'h'
	recTrimmed = 't'
	recError   = 'x'
	recEnd     = 'e'

	// logPageEntries is the most non-trimmed positions one /log page holds
	// (and the default of max).
	logPageEntries = 1024
	// logPageBytes: a page ends after the entry that takes its data past
	// this many bytes.
	logPageBytes = 32 << 20
	// logPageScan is the most positions one page reads (trimmed ones
	// included).
	logPageScan = 1 << 20
)

// errLogStream: a /log stream that does not decode.
var errLogStream = errors.New("malformed log stream")

// serveLog is the admin server's /log handler.
func (s *server) serveLog(w http.ResponseWriter, r *http.Request) {
	if s.db == nil || s.shutting.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	serveLogPages(w, r, s.log, s.logger)
}

// serveLogPages answers a /log request from l.
func serveLogPages(w http.ResponseWriter, r *http.Request, l log.Log, logger *slog.Logger) {
	q := r.URL.Query()
	num := func(name string, def uint64) (uint64, bool, error) {
		v := q.Get(name)
		if v == "" {
			return def, false, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: not a log position: %q", name, v)
		}
		return n, true, nil
	}
	from, _, err := num("from", 0)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	to, toSet, err := num("to", 0)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	max, _, err := num("max", logPageEntries)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if toSet && from > to {
		http.Error(w, fmt.Sprintf("from %d is after to %d", from, to), http.StatusBadRequest)
		return
	}
	if max == 0 || max > logPageEntries {
		http.Error(w, fmt.Sprintf("max must be 1 to %d", logPageEntries), http.StatusBadRequest)
		return
	}
	tail, err := l.Tail(r.Context())
	if err != nil {
		http.Error(w, "read tail: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	// Positions [from, end) are read; end is at most the tail.
	end := uint64(tail)
	if toSet && to < end {
		end = to + 1
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Cruzdb-Log-Tail", strconv.FormatUint(uint64(tail), 10))
	bw := bufio.NewWriter(w)
	bw.WriteString(logMagic)
	var hdr [1 + 2*binary.MaxVarintLen64]byte
	put := func(status byte, p, n uint64) {
		hdr[0] = status
		k := 1 + binary.PutUvarint(hdr[1:], p)
		k += binary.PutUvarint(hdr[k:], n)
		bw.Write(hdr[:k])
	}
	var entries, size uint64
	trimStart, trimmed := uint64(0), uint64(0)
	flushTrim := func() {
		if trimmed > 0 {
			put(recTrimmed, trimStart, trimmed)
			trimmed = 0
		}
	}
	p := from
	for ; p < end && entries < max && size < logPageBytes && p-from < logPageScan; p++ {
		data, err := l.Read(r.Context(), log.Position(p))
		if errors.Is(err, log.ErrTrimmed) {
			if trimmed == 0 {
				trimStart = p
			}
			trimmed++
			continue
		}
		flushTrim()
		entries++
		switch {
		case errors.Is(err, log.ErrFilled):
			put(recFilled, p, 0)
		case errors.Is(err, log.ErrNotWritten):
			put(recHole, p, 0)
		case err != nil:
			msg := err.Error()
			put(recError, p, uint64(len(msg)))
			bw.WriteString(msg)
			bw.Flush()
			return // no end record: the client reports the error
		default:
			put(recData, p, uint64(len(data)))
			bw.Write(data)
			size += uint64(len(data))
		}
	}
	flushTrim()
	put(recEnd, p, 0)
	if err := bw.Flush(); err != nil {
		logger.Warn("log stream stopped", "err", err, "from", from)
	}
}

// logRecord is one position (or trimmed run) of a /log page.
type logRecord struct {
	status byte
	pos, n uint64 // n: the run length of a trimmed record
	data   []byte // data, or an error record's message
}

// decodeLogPage reads one /log page asked for from..to (inclusive): its
// records in order, and the next position to ask for. An error record (a
// read that failed on the server) ends the page. Every record must lie
// in [from, to], in ascending order without overlap, and the page must end
// with its end record.
func decodeLogPage(r io.Reader, from, to uint64) ([]logRecord, uint64, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(logMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != logMagic {
		return nil, 0, fmt.Errorf("%w: no magic", errLogStream)
	}
	var recs []logRecord
	next := from // the lowest position the next record may name
	for {
		status, err := br.ReadByte()
		if err != nil {
			return nil, 0, fmt.Errorf("%w: truncated (no end record)", errLogStream)
		}
		p, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: truncated record", errLogStream)
		}
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: truncated record", errLogStream)
		}
		if status == recEnd {
			if p < next || p > to && p-to != 1 || p == from && p <= to || n != 0 {
				return nil, 0, fmt.Errorf("%w: end record at %d after %d", errLogStream, p, next)
			}
			return recs, p, nil
		}
		if p < next || p > to {
			return nil, 0, fmt.Errorf("%w: position %d outside [%d, %d]", errLogStream, p, next, to)
		}
		rec := logRecord{status: status, pos: p}
		switch status {
		case recFilled, recHole:
			if n != 0 {
				return nil, 0, fmt.Errorf("%w: position %d: length %d", errLogStream, p, n)
			}
			next = p + 1
		case recTrimmed:
			if n == 0 || n-1 > to-p {
				return nil, 0, fmt.Errorf("%w: trimmed run of %d at %d", errLogStream, n, p)
			}
			rec.n = n
			next = p + n
		case recData, recError:
			if n > log.MaxEntrySize {
				return nil, 0, fmt.Errorf("%w: position %d: length %d", errLogStream, p, n)
			}
			rec.data = make([]byte, n)
			if _, err := io.ReadFull(br, rec.data); err != nil {
				return nil, 0, fmt.Errorf("%w: position %d: truncated data", errLogStream, p)
			}
			if status == recError && p+1 != 0 { // the last record: the page ends here
				return append(recs, rec), p + 1, nil
			}
			next = p + 1
		default:
			return nil, 0, fmt.Errorf("%w: unknown record type %q", errLogStream, status)
		}
		recs = append(recs, rec)
		if next == 0 { // wrapped past the last position
			return nil, 0, fmt.Errorf("%w: position overflow", errLogStream)
		}
	}
}

// liveLog is a read-only log.Log over a running cruzd's /log. Its tail is
// the one the server reported for the first page, so that a printout is of
// one prefix of the log; it reads [from, to] page by page as asked.
type liveLog struct {
	base     string // http://host:port/log
	pass     string // basic-auth password; "" for none
	from     uint64
	to       *uint64
	pageSize int

	tail               uint64
	started            bool
	recs               []logRecord // the current page, ascending
	pageStart, pageEnd uint64      // the positions it covers: [pageStart, pageEnd)
}

// newLiveLog reads the log of the cruzd whose admin server is at addr,
// positions from..to (to unset: up to the tail), pageSize at a time.
func newLiveLog(addr, pass string, from, to positionFlag, pageSize int) *liveLog {
	l := &liveLog{base: "http://" + addr + "/log", pass: pass, from: from.v, pageSize: pageSize}
	if to.set {
		l.to = &to.v
	}
	return l
}

var errReadOnly = errors.New("cruzd inspect: the log is read-only")

// fetch reads the page that starts at from.
func (l *liveLog) fetch(ctx context.Context, from uint64) error {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "max": {strconv.Itoa(l.pageSize)}}
	to, toSet := uint64(0), false
	if l.started {
		to, toSet = l.tail-1, true // callers ask only below a nonzero tail
	}
	if l.to != nil && (!toSet || *l.to < to) {
		to, toSet = *l.to, true
	}
	if toSet {
		q.Set("to", strconv.FormatUint(to, 10))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if l.pass != "" {
		req.SetBasicAuth("default", l.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("%s: %s: %s", l.base, resp.Status, bytes.TrimSpace(msg))
	}
	if !l.started {
		t, err := strconv.ParseUint(resp.Header.Get("X-Cruzdb-Log-Tail"), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: no log tail header", errLogStream)
		}
		l.tail, l.started = t, true
		if t == 0 || from >= t {
			// Nothing to read: Read answers at and past the tail itself.
			l.recs, l.pageStart, l.pageEnd = nil, from, from
			return nil
		}
		if !toSet || to > t-1 {
			to = t - 1
		}
	}
	recs, next, err := decodeLogPage(resp.Body, from, to)
	if err != nil {
		return err
	}
	if next == from && from <= to {
		return fmt.Errorf("%w: empty page at %d", errLogStream, from)
	}
	l.recs, l.pageStart, l.pageEnd = recs, from, next
	return nil
}

// Tail returns the tail the server reported first.
func (l *liveLog) Tail(ctx context.Context) (log.Position, error) {
	if !l.started {
		if err := l.fetch(ctx, l.from); err != nil {
			return 0, err
		}
	}
	return log.Position(l.tail), nil
}

// Read returns the entry at pos, fetching the page that starts there when
// the current page does not hold it.
func (l *liveLog) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	p := uint64(pos)
	if !l.started {
		if _, err := l.Tail(ctx); err != nil {
			return nil, err
		}
	}
	if p >= l.tail {
		return nil, fmt.Errorf("position %d: %w", p, log.ErrNotWritten)
	}
	if p < l.pageStart || p >= l.pageEnd {
		if err := l.fetch(ctx, p); err != nil {
			return nil, err
		}
	}
	// The last record at or before p.
	i := sort.Search(len(l.recs), func(i int) bool { return l.recs[i].pos > p }) - 1
	if i >= 0 {
		switch r := l.recs[i]; {
		case r.status == recTrimmed && p < r.pos+r.n:
			return nil, fmt.Errorf("position %d: %w", p, log.ErrTrimmed)
		case r.pos != p:
		case r.status == recData:
			return r.data, nil
		case r.status == recFilled:
			return nil, fmt.Errorf("position %d: %w", p, log.ErrFilled)
		case r.status == recHole:
			return nil, fmt.Errorf("position %d: %w", p, log.ErrNotWritten)
		case r.status == recError:
			return nil, fmt.Errorf("the server: %s", r.data)
		}
	}
	return nil, fmt.Errorf("%w: position %d missing from its page", errLogStream, p)
}

func (l *liveLog) Append(context.Context, []byte) (log.Position, error) { return 0, errReadOnly }
func (l *liveLog) Fill(context.Context, log.Position) error             { return errReadOnly }
func (l *liveLog) Trim(context.Context, log.Position) error             { return errReadOnly }
func (l *liveLog) Close() error                                         { return nil }
