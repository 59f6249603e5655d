package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
)

// The differential test runs one seeded random stream of commands against
// cruzd and against a real redis-server and requires byte-identical replies:
// the commands cruzd implements, their edge cases (NX/XX/GET, overflow,
// non-integers, wrong arity, unknown commands), MULTI/EXEC/DISCARD with
// errors queued and at run time, WATCH with a second connection writing in
// between, and pipelines. redis-server must be on PATH; without it the test
// is skipped, unless CRUZDB_REQUIRE_REDIS_SERVER is set (as .ci/run does),
// when it fails.
//
//	go test ./cmd/cruzd -run TestDifferentialAgainstRedis -v -diff.seed=7 -diff.steps=20000

var (
	diffSeed  = flag.Uint64("diff.seed", 1, "seed of TestDifferentialAgainstRedis's command stream")
	diffSteps = flag.Int("diff.steps", 3000, "commands in TestDifferentialAgainstRedis's stream")
)

func TestDifferentialAgainstRedis(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CRUZDB_REQUIRE_REDIS_SERVER") != "" {
			t.Fatalf("redis-server not found and CRUZDB_REQUIRE_REDIS_SERVER is set: %v", err)
		}
		t.Skip("redis-server not on PATH (apt-get install redis-server); set CRUZDB_REQUIRE_REDIS_SERVER to make this a failure")
	}
	redisAddr := startRedisServer(t, bin)
	s := testServer(t, nil)

	// a and b are two connections to each server: b writes between a's
	// WATCH and EXEC.
	ca, cb := dialPair(t, s.Addr().String(), redisAddr), dialPair(t, s.Addr().String(), redisAddr)
	g := &cmdGen{r: rand.New(rand.NewPCG(*diffSeed, 0x5eed))}
	var history []string
	mismatches := 0
	var execs, watchAborts, execAborts, scans int
	check := func(p *connPair, cmds [][]string) {
		t.Helper()
		got, want := p.do(t, cmds)
		for i, c := range cmds {
			history = append(history, strings.Join(c, " "))
			if strings.EqualFold(c[0], "EXEC") {
				switch {
				case want[i] == "*-1\r\n":
					watchAborts++
				case strings.HasPrefix(want[i], "-EXECABORT"):
					execAborts++
				case strings.HasPrefix(want[i], "*"):
					execs++
				}
			}
			if got[i] != want[i] {
				mismatches++
				from := max(0, len(history)-12)
				t.Errorf("seed %d, command %d: %q\n cruzd:        %q\n redis-server: %q\n history:\n  %s",
					*diffSeed, len(history)-1, strings.Join(c, " "), got[i], want[i],
					strings.Join(history[from:], "\n  "))
			}
		}
	}
	for steps := 0; steps < *diffSteps && mismatches < 10; {
		switch n := g.r.IntN(100); {
		case n < 60: // one command
			check(ca, [][]string{g.command()})
			steps++
		case n < 75: // a pipeline
			cmds := make([][]string, 2+g.r.IntN(15))
			for i := range cmds {
				cmds[i] = g.command()
			}
			if g.r.IntN(4) == 0 { // a transaction inside the pipeline
				i := g.r.IntN(len(cmds))
				txn := [][]string{{"MULTI"}, g.txnCommand(), g.txnCommand(), {"EXEC"}}
				cmds = append(cmds[:i], append(txn, cmds[i:]...)...)
			}
			check(ca, cmds)
			steps += len(cmds)
		case n < 78: // a full SCAN on each server, compared as sets of keys
			opts, bad := g.scanArgs()
			if bad || g.r.IntN(20) == 0 {
				cursor := "0"
				if !bad {
					cursor = []string{"x", "18446744073709551616", "1.5", "0x10"}[g.r.IntN(4)]
				}
				check(ca, [][]string{append([]string{"SCAN", cursor}, opts...)})
				steps++
				continue
			}
			got, err := ca.cruzd.scanAll(opts)
			if err != nil {
				t.Fatalf("cruzd: SCAN %q: %v", opts, err)
			}
			want, err := ca.redis.scanAll(opts)
			if err != nil {
				t.Fatalf("redis-server: SCAN %q: %v", opts, err)
			}
			history = append(history, "SCAN (full) "+strings.Join(opts, " "))
			scans++
			if !slices.Equal(got, want) {
				mismatches++
				t.Errorf("seed %d, command %d: full SCAN %q\n cruzd:        %q\n redis-server: %q",
					*diffSeed, len(history)-1, opts, got, want)
			}
			steps++
		case n < 88: // MULTI ... EXEC or DISCARD, with mistakes now and then
			cmds := [][]string{{"MULTI"}}
			for range g.r.IntN(5) {
				cmds = append(cmds, g.txnCommand())
			}
			switch m := g.r.IntN(20); {
			case m == 0:
				cmds = append(cmds, []string{"MULTI"})
			case m == 1:
				cmds = append(cmds, []string{"WATCH", g.key()})
			case m == 2:
				cmds = append(cmds, []string{"NOSUCHCOMMAND", "x"})
			}
			if g.r.IntN(6) == 0 {
				cmds = append(cmds, []string{"DISCARD"})
			} else {
				cmds = append(cmds, []string{"EXEC"})
			}
			check(ca, cmds)
			steps += len(cmds)
		default: // WATCH, maybe a write from the other connection, then a transaction
			k := g.key()
			check(ca, [][]string{{"WATCH", k}})
			switch g.r.IntN(4) {
			case 0:
				check(cb, [][]string{g.write(k)})
			case 1:
				check(cb, [][]string{g.write(g.key())})
			case 2:
				check(ca, [][]string{g.command()}) // the watcher itself
			}
			if g.r.IntN(8) == 0 {
				check(ca, [][]string{{"UNWATCH"}})
			}
			check(ca, [][]string{{"MULTI"}, {"GET", k}, g.write(g.key()), {"EXEC"}})
			steps += 4
		}
	}
	// The final state, key by key.
	for _, k := range g.keys() {
		check(ca, [][]string{{"GET", k}})
	}
	check(ca, [][]string{{"DBSIZE"}})
	t.Logf("seed %d: %d commands compared; EXEC ran %d transactions, %d aborted by WATCH, %d by queueing errors; %d full SCANs",
		*diffSeed, len(history), execs, watchAborts, execAborts, scans)
	// The stream must reach the cases it is for (a change to the generator
	// could quietly stop producing them).
	if *diffSteps >= 1000 && (execs == 0 || watchAborts == 0 || execAborts == 0 || scans == 0) {
		t.Errorf("the stream did not exercise every case: %d EXECs ran, %d WATCH aborts, %d EXECABORTs, %d full SCANs",
			execs, watchAborts, execAborts, scans)
	}
}

// cmdGen makes random commands over a few keys and awkward values.
type cmdGen struct{ r *rand.Rand }

// diffKeys are the keys the stream writes: a few for contention, and some
// with the glob's special bytes for KEYS and SCAN patterns to match.
var diffKeys = []string{"a", "b", "c", "counter", "k:1", "k:2", "k:10", "ab",
	"-", "]", "^", "a-b", "[x]", "x*", `\`, "a?c"}

// patternTokens are what KEYS and SCAN patterns are made of.
var patternTokens = []string{"a", "b", "c", "k", ":", "1", "0", "x", "-", "]",
	"^", "*", "*", "?", "[", `\`, "[ab]", "[^a]", "[a-c]", "[c-a]", "[a-]",
	"[-a]", "[]", "[^]", `[\]]`, `\*`, `\[`, "[x", "**"}

// pattern is a random glob pattern (never empty).
func (g *cmdGen) pattern() string {
	var b strings.Builder
	for range 1 + g.r.IntN(4) {
		b.WriteString(patternTokens[g.r.IntN(len(patternTokens))])
	}
	return b.String()
}

var diffValues = []string{
	"", "0", "1", "-1", "42", "007", "+5", " 3", "3 ", "abc", "1.5", "1e3",
	"9223372036854775806", "9223372036854775807", "-9223372036854775808",
	"9223372036854775808", "-9223372036854775809", "hello world", "\x00\xff",
}

func (g *cmdGen) keys() []string { return diffKeys }
func (g *cmdGen) key() string    { return diffKeys[g.r.IntN(len(diffKeys))] }
func (g *cmdGen) value() string  { return diffValues[g.r.IntN(len(diffValues))] }

// write is a command that writes k.
func (g *cmdGen) write(k string) []string {
	switch g.r.IntN(5) {
	case 0:
		return []string{"SET", k, g.value()}
	case 1:
		return []string{"INCR", k}
	case 2:
		return []string{"APPEND", k, g.value()}
	case 3:
		return []string{"DEL", k}
	default:
		return []string{"GETSET", k, g.value()}
	}
}

// txnCommand is a command whose reply inside EXEC has a defined order (not
// KEYS, whose array EXEC would nest where the test does not sort it).
func (g *cmdGen) txnCommand() []string {
	for {
		if c := g.command(); inTxnOK(c) {
			return c
		}
	}
}

// withKeys is name followed by 1 to most keys.
func (g *cmdGen) withKeys(name string, most int) []string {
	c := []string{name}
	for range 1 + g.r.IntN(most) {
		c = append(c, g.key())
	}
	return c
}

func (g *cmdGen) command() []string {
	if g.r.IntN(2) == 0 {
		return g.extCommand()
	}
	k, v := g.key(), g.value()
	switch g.r.IntN(30) {
	case 0, 1, 2:
		return []string{"GET", k}
	case 3, 4, 5:
		c := []string{"SET", k, v}
		for _, opt := range []string{"NX", "XX", "GET", "nx", "get"} {
			if g.r.IntN(5) == 0 {
				c = append(c, opt)
			}
		}
		if g.r.IntN(30) == 0 {
			c = append(c, "BOGUS")
		}
		return c
	case 6:
		return []string{"SETNX", k, v}
	case 7:
		return []string{"GETSET", k, v}
	case 8:
		return g.withKeys("MGET", 4)
	case 9:
		c := []string{"MSET"}
		for range 1 + g.r.IntN(3) {
			c = append(c, g.key(), g.value())
		}
		if g.r.IntN(10) == 0 {
			c = c[:len(c)-1] // odd: wrong arity
		}
		return c
	case 10, 11:
		return g.withKeys("DEL", 3)
	case 12:
		return g.withKeys("EXISTS", 4)
	case 13, 14:
		return []string{"INCR", k}
	case 15:
		return []string{"DECR", k}
	case 16:
		return []string{"INCRBY", k, v}
	case 17:
		return []string{"DECRBY", k, v}
	case 18, 19:
		return []string{"APPEND", k, v}
	case 20:
		return []string{"STRLEN", k}
	case 21:
		return []string{"DBSIZE"}
	case 22:
		if g.r.IntN(2) == 0 {
			return []string{"PING"}
		}
		return []string{"PING", v}
	case 23:
		return []string{"ECHO", v}
	case 24: // wrong arity
		return [][]string{{"GET"}, {"GET", k, k}, {"SET", k}, {"INCR"}, {"STRLEN", k, k},
			{"INCRBY", k}, {"APPEND", k}, {"SETNX", k}, {"GETSET", k}, {"ECHO"},
			{"MGET"}, {"DEL"}, {"EXISTS"}, {"MSET"}, {"DECRBY", k, "1", "2"}}[g.r.IntN(15)]
	case 25:
		return []string{"nosuch", k, v}
	case 26:
		return []string{"set", k, v} // commands are case-insensitive
	case 27:
		return []string{"incrby", k, strconv.Itoa(g.r.IntN(2001) - 1000)}
	case 28:
		return []string{"SETNX", k, v}
	default:
		if g.r.IntN(3) == 0 {
			return []string{"KEYS", "*"}
		}
		return []string{"KEYS", g.pattern()}
	}
}

// scanArgs are the options of a SCAN: a pattern and a count now and then,
// and mistakes now and then (both servers must refuse them alike).
func (g *cmdGen) scanArgs() (opts []string, bad bool) {
	if g.r.IntN(2) == 0 {
		opts = append(opts, "MATCH", g.pattern())
	}
	if g.r.IntN(2) == 0 {
		opts = append(opts, "COUNT", strconv.Itoa(1+g.r.IntN(20)))
	}
	if g.r.IntN(3) == 0 {
		opts = append(opts, "TYPE", []string{"string", "STRING", "list", "hash"}[g.r.IntN(4)])
	}
	if g.r.IntN(10) == 0 {
		bad = true
		opts = append(opts, [][]string{{"COUNT", "0"}, {"COUNT", "x"}, {"COUNT", "-1"},
			{"MATCH"}, {"BOGUS", "1"}, {"count"}}[g.r.IntN(6)]...)
	}
	return opts, bad
}

// connPair is one connection to cruzd and one to redis-server.
type connPair struct {
	cruzd, redis *diffConn
}

type diffConn struct {
	nc net.Conn
	br *bufio.Reader
}

func dialPair(t *testing.T, cruzdAddr, redisAddr string) *connPair {
	t.Helper()
	dial := func(addr string) *diffConn {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return &diffConn{nc: nc, br: bufio.NewReader(nc)}
	}
	return &connPair{cruzd: dial(cruzdAddr), redis: dial(redisAddr)}
}

// do sends cmds in one write (a pipeline) to each server and returns both
// servers' replies.
func (p *connPair) do(t *testing.T, cmds [][]string) (cruzd, redis []string) {
	t.Helper()
	return p.cruzd.do(t, cmds), p.redis.do(t, cmds)
}

// send writes cmds in one write, as RESP arrays of bulk strings.
func (c *diffConn) send(cmds ...[]string) error {
	var b strings.Builder
	for _, cmd := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(cmd))
		for _, a := range cmd {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	_, err := c.nc.Write([]byte(b.String()))
	return err
}

func (c *diffConn) do(t *testing.T, cmds [][]string) []string {
	t.Helper()
	if err := c.send(cmds...); err != nil {
		t.Fatalf("write: %v", err)
	}
	out := make([]string, len(cmds))
	for i, cmd := range cmds {
		r, err := readReply(c.br)
		if err != nil {
			t.Fatalf("%q: read reply: %v (got %q)", cmd, err, r)
		}
		out[i] = normalizeReply(cmd, r)
	}
	return out
}

// scanAll runs SCAN with opts from cursor 0 until the server returns cursor
// 0 and returns the keys it returned, sorted and without duplicates (SCAN
// may return a key twice).
func (c *diffConn) scanAll(opts []string) ([]string, error) {
	var keys []string
	cursor := "0"
	for range 10000 {
		if err := c.send(append([]string{"SCAN", cursor}, opts...)); err != nil {
			return nil, err
		}
		r, err := readReply(c.br)
		if err != nil {
			return nil, err
		}
		elems, err := parseBulkArray(r)
		if err != nil || len(elems) < 1 {
			return nil, fmt.Errorf("reply %q: %v", r, err)
		}
		more, err := parseBulkArray(strings.Join(strings.SplitAfter(r, "\r\n")[3:], ""))
		if err != nil {
			return nil, fmt.Errorf("reply %q: %v", r, err)
		}
		cursor = elems[0]
		keys = append(keys, more...)
		if cursor == "0" {
			slices.Sort(keys)
			return slices.Compact(keys), nil
		}
	}
	return nil, fmt.Errorf("SCAN did not finish in 10,000 calls")
}

// parseBulkArray returns the bulk strings of the RESP array at the start
// of r, stopping at the first element that is not a bulk string.
func parseBulkArray(r string) ([]string, error) {
	line, rest, ok := strings.Cut(r, "\r\n")
	if !ok || !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array")
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil {
		return nil, err
	}
	var out []string
	for range n {
		if !strings.HasPrefix(rest, "$") {
			break
		}
		line, after, _ := strings.Cut(rest, "\r\n")
		l, err := strconv.Atoi(line[1:])
		if err != nil || l < 0 || len(after) < l+2 {
			return nil, fmt.Errorf("bad bulk %q", line)
		}
		out = append(out, after[:l])
		rest = after[l+2:]
	}
	return out, nil
}

// sortedArray puts the elements of a RESP array of bulk strings in order:
// KEYS has no defined order.
func sortedArray(r string) string {
	lines := strings.SplitAfter(r, "\r\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "*") {
		return r
	}
	var elems []string
	for i := 1; i+1 < len(lines); i += 2 {
		elems = append(elems, lines[i]+lines[i+1])
	}
	slices.Sort(elems)
	return lines[0] + strings.Join(elems, "")
}

// startRedisServer runs redis-server without persistence on a free port for
// the rest of the test and returns its address.
func startRedisServer(t *testing.T, bin string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if !testutil.Poll(testutil.WaitLong, func() bool {
		var nc net.Conn
		if nc, err = net.Dial("tcp", addr); err != nil {
			return false
		}
		defer nc.Close()
		nc.Write([]byte("PING\r\n"))
		var r string
		r, err = readReply(bufio.NewReader(nc))
		return err == nil && r == "+PONG\r\n"
	}) {
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		t.Fatalf("redis-server did not start on %s: %v\n%s", addr, err, log)
	}
	return addr
}
