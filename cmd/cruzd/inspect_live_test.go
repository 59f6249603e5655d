package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/internal/inspect"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestInspectLive: `cruzd inspect --addr` on a running cruzd (its embedded
// log locked by it) prints the header, intentions and afterimages, and,
// once cruzd is stopped, `cruzd inspect --data-dir` prints the same lines
// for the same positions, plain and --verbose.
func TestInspectLive(t *testing.T) {
	dir := t.TempDir()
	s := testServer(t, func(c *config) { c.DataDir = dir })
	c := client(t, s)
	ctx := ctxT(t)
	c.Set(ctx, "a", "1", 0)
	c.MSet(ctx, "x", "2", "y", "3")
	c.HSet(ctx, "h", "f", "v")
	c.Del(ctx, "a")
	for range 3 {
		c.Incr(ctx, "n")
	}
	// Wait for the log to settle: everything replayed and flushed.
	settled := func() bool {
		st := s.db.Stats()
		return st.UnflushedBytes == 0 && st.PendingDeltas == 0 && uint64(st.Position)+1 == s.logTail()
	}
	if !testutil.Poll(testutil.WaitLong, settled) {
		t.Fatalf("log did not settle: %+v, tail %d", s.db.Stats(), s.logTail())
	}
	admin := s.AdminAddr().String()
	inspectRun := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(append([]string{"inspect"}, args...), &out, &errOut); code != 0 {
			t.Fatalf("cruzd inspect %q: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	live := inspectRun("--addr", admin)
	liveV := inspectRun("--addr", admin, "--verbose")
	for _, want := range []string{"\theader\t", "\tintention\t", "\tafterimage\t", "summary: header 1, intentions 7,"} {
		if !strings.Contains(live, want) {
			t.Errorf("live inspect output lacks %q:\n%s", want, live)
		}
	}
	if !strings.Contains(liveV, "\t\tput \"kx\" (2 bytes)") || !strings.Contains(liveV, "\t\tdelete \"ka\"") {
		t.Errorf("live --verbose output lacks the keys:\n%s", liveV)
	}
	// The log is locked while cruzd runs.
	var out, errOut bytes.Buffer
	if code := run([]string{"inspect", "--data-dir", dir}, &out, &errOut); code == 0 {
		t.Fatalf("inspect --data-dir of a running cruzd succeeded:\n%s", out.String())
	}

	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Stopping may append (a seal); compare the positions the live run saw.
	for _, c := range []struct{ live, flag string }{{live, ""}, {liveV, "--verbose"}} {
		first, rest, _ := strings.Cut(c.live, "\n")
		tail, err := strconv.ParseUint(strings.TrimPrefix(first, "log tail "), 10, 64)
		if err != nil || tail == 0 {
			t.Fatalf("live output starts %q", first)
		}
		args := []string{"--data-dir", dir, "--to", strconv.FormatUint(tail-1, 10)}
		if c.flag != "" {
			args = append(args, c.flag)
		}
		_, stopped, _ := strings.Cut(inspectRun(args...), "\n")
		if rest != stopped {
			t.Errorf("inspect --addr %s and --data-dir differ:\n--- live\n%s--- stopped\n%s", c.flag, rest, stopped)
		}
	}
}

// TestInspectLivePages: read through /log page by page (1, 2 and 1024
// positions a page), a log with a trimmed prefix, junk, a hole, corrupt and
// empty entries prints exactly as the log itself does, for several ranges.
func TestInspectLivePages(t *testing.T) {
	ctx := ctxT(t)
	ml := memlog.New(nil)
	defer ml.Close()
	drop := false
	ml.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && drop {
			return memlog.Fault{Drop: true}
		}
		return memlog.Fault{}
	})
	for i := range 12 {
		drop = i == 9
		if _, err := ml.Append(ctx, []byte("entry "+strconv.Itoa(i))); (err != nil) != drop {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	drop = false
	ml.Append(ctx, nil)
	if err := ml.Fill(ctx, 13); err != nil {
		t.Fatal(err)
	}
	ml.Append(ctx, []byte("last"))
	if err := ml.Trim(ctx, 5); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveLogPages(w, r, ml, logger)
	}))
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")

	p := func(v uint64) positionFlag { return positionFlag{v: v, set: true} }
	ranges := []struct{ from, to positionFlag }{
		{}, {p(2), positionFlag{}}, {p(0), p(3)}, {p(4), p(9)}, {p(9), p(9)}, {p(12), p(100)}, {p(40), positionFlag{}},
	}
	for _, rg := range ranges {
		for _, verbose := range []bool{false, true} {
			var to *uint64
			if rg.to.set {
				to = &rg.to.v
			}
			var want bytes.Buffer
			if err := inspect.Log(ctx, ml, &want, rg.from.v, to, verbose); err != nil {
				t.Fatal(err)
			}
			for _, page := range []int{1, 2, logPageEntries} {
				var got bytes.Buffer
				if err := inspect.Log(ctx, newLiveLog(addr, "", rg.from, rg.to, page), &got, rg.from.v, to, verbose); err != nil {
					t.Fatalf("from %v to %v page %d: %v", rg.from, rg.to, page, err)
				}
				if got.String() != want.String() {
					t.Errorf("from %v to %v page %d verbose %v:\n--- live\n%s--- log\n%s", rg.from, rg.to, page, verbose, got.String(), want.String())
				}
			}
		}
	}
	// The whole printout names every kind of position.
	var all bytes.Buffer
	inspect.Log(ctx, newLiveLog(addr, "", positionFlag{}, positionFlag{}, 2), &all, 0, nil, false)
	for _, want := range []string{"0-4\ttrimmed\n", "9\thole (not written)\n", "12\tcorrupt\t0 bytes", "13\tjunk\n", "14\tcorrupt\t4 bytes"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("printout lacks %q:\n%s", want, all.String())
		}
	}
	// A failed read is reported, not printed as a position.
	ml.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpRead && c.Pos == 7 {
			return memlog.Fault{Err: log.ErrCorrupt}
		}
		return memlog.Fault{}
	})
	err := inspect.Log(ctx, newLiveLog(addr, "", positionFlag{}, positionFlag{}, 1024), io.Discard, 0, nil, false)
	if err == nil || !strings.Contains(err.Error(), "read position 7: the server:") || !strings.Contains(err.Error(), "storage corrupt") {
		t.Fatalf("a failed read: %v", err)
	}
	ml.SetInject(nil)
	// An empty log prints as one.
	empty := memlog.New(nil)
	defer empty.Close()
	es := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveLogPages(w, r, empty, logger)
	}))
	defer es.Close()
	var got bytes.Buffer
	if err := inspect.Log(ctx, newLiveLog(strings.TrimPrefix(es.URL, "http://"), "", positionFlag{}, positionFlag{}, 2), &got, 0, nil, false); err != nil || got.String() != "log tail 0\n(empty log)\n" {
		t.Fatalf("empty log: %q, %v", got.String(), err)
	}
	// The live log writes nothing.
	l := newLiveLog(addr, "", positionFlag{}, positionFlag{}, 2)
	if _, err := l.Append(ctx, []byte("x")); !errors.Is(err, errReadOnly) {
		t.Fatalf("Append on the live log: %v", err)
	}
}

// TestInspectLiveBadInput: /log refuses bad ranges with 400 and a message;
// inspect --addr reports them; with --requirepass the admin password is
// needed and accepted.
func TestInspectLiveBadInput(t *testing.T) {
	s := testServer(t, func(c *config) { c.Security.RequirePass = "pw" })
	base := "http://" + s.AdminAddr().String() + "/log"
	get := func(query string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+query, nil)
		req.SetBasicAuth("any", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct{ query, want string }{
		{"?from=5&to=3", "from 5 is after to 3"},
		{"?from=x", "from: not a log position"},
		{"?to=-1", "to: not a log position"},
		{"?max=0", "max must be 1 to 1024"},
		{"?max=5000", "max must be 1 to 1024"},
	} {
		code, body := get(c.query)
		if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("GET /log%s: %d %q, want 400 %q", c.query, code, body, c.want)
		}
	}
	if code, body := get(""); code != http.StatusOK || !strings.HasPrefix(body, logMagic) {
		t.Errorf("GET /log: %d %q", code, body)
	}
	if code, _ := httpGet(t, base); code != http.StatusUnauthorized {
		t.Errorf("GET /log without the password: %d", code)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"inspect", "--addr", s.AdminAddr().String(), "--requirepass", "pw", "--from", "5", "--to", "3"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "400 Bad Request: from 5 is after to 3") {
		t.Errorf("inspect --from 5 --to 3: exit %d: %s", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"inspect", "--addr", s.AdminAddr().String()}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "401") {
		t.Errorf("inspect without the password: exit %d: %s", code, errOut.String())
	}
	out.Reset()
	t.Setenv("CRUZD_REQUIREPASS", "pw")
	if code := run([]string{"inspect", "--addr", s.AdminAddr().String()}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "0\theader\t") {
		t.Errorf("inspect with CRUZD_REQUIREPASS: exit %d: %s%s", code, out.String(), errOut.String())
	}
}

// FuzzDecodeLogPage: any stream either decodes to records in ascending
// order inside the asked range, ending at a position in it, or is refused
// with an error; never a panic.
func FuzzDecodeLogPage(f *testing.F) {
	ml := memlog.New(nil)
	defer ml.Close()
	for i := range 6 {
		ml.Append(context.Background(), []byte(strings.Repeat("e", i)))
	}
	ml.Fill(context.Background(), 6)
	ml.Append(context.Background(), []byte("x"))
	ml.Trim(context.Background(), 2)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, q := range []string{"", "?max=3", "?from=4&to=6", "?from=0&to=1"} {
		rec := httptest.NewRecorder()
		serveLogPages(rec, httptest.NewRequest(http.MethodGet, "/log"+q, nil), ml, logger)
		f.Add(rec.Body.Bytes(), uint64(0), uint64(7))
	}
	f.Add([]byte(logMagic+"x\x03\x02hi"), uint64(0), uint64(7))
	f.Add([]byte(logMagic+"t\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01e\x00\x00"), uint64(0), ^uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, from, to uint64) {
		recs, next, err := decodeLogPage(bytes.NewReader(data), from, to)
		if err != nil {
			return
		}
		at := from
		for _, r := range recs {
			if r.pos < at || r.pos > to {
				t.Fatalf("record at %d after %d, range [%d, %d]", r.pos, at, from, to)
			}
			at = r.pos + 1
			if r.status == recTrimmed {
				at = r.pos + r.n
			}
		}
		if next < at || (to != ^uint64(0) && next > to+1) {
			t.Fatalf("next %d, records up to %d, to %d", next, at, to)
		}
	})
}
