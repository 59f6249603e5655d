package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/internal/resp"
)

const (
	// readBufSize is the connection's read buffer: a pipeline batch is what
	// is already in it after a command is parsed.
	readBufSize = 16 << 10
	// maxBatch and maxBatchBytes bound one batch of pipelined commands. The
	// byte bound keeps big values in transactions of their own, so that a
	// batch's intention and afterimage stay close to a single command's.
	maxBatch      = 1024
	maxBatchBytes = 1 << 20
	// keepReplyBuf is the largest reply buffer kept between batches.
	keepReplyBuf = 1 << 20
)

// conn is one client connection. Its goroutine reads a batch of commands
// (everything the client has sent so far), runs it and writes the replies.
type conn struct {
	s  *server
	nc net.Conn
	id int64
	rd *resp.Reader
	w  resp.Writer

	argBufs [][][]byte // per batch slot, reused
	specs   []*cmdSpec // per batch slot
	locks   []lockReq  // scratch for key locks
	name    string     // CLIENT SETNAME
	quit    bool
	created time.Time
	lastCmd string // the last command run (CLIENT LIST's cmd)
	// shared is what other connections' CLIENT LIST shows of this one.
	shared atomic.Pointer[sharedInfo]
	active time.Time // when the last batch began (CLIENT LIST's idle)
	authed bool      // AUTH succeeded (security.go)
	mkey   []byte    // scratch for a metadata key (loadMeta, storeMeta)
	mval   []byte    // scratch for an encoded metadata value (storeMeta)
	own    []byte    // the chunk of small writes handed to transactions (owned, store.go)
	ownFor int       // bytes the batch's writes may take of it (readBatch)

	gm   getManyScratch // scratch for runs of GETs (getmany.go)
	breq batchReq       // the request of its batches to the combiner (combine.go)

	// MULTI / WATCH state.
	inMulti    bool
	multiDirty bool // a command failed to queue: EXEC replies EXECABORT
	queued     []queuedCmd
	watches    []watch
}

type queuedCmd struct {
	spec *cmdSpec
	args [][]byte // owned copies
}

type watch struct {
	key []byte
	pos uint64
}

func newConn(s *server, nc net.Conn) *conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
	}
	return &conn{
		s:       s,
		nc:      nc,
		id:      s.nextID.Add(1),
		rd:      resp.NewReader(nc, readBufSize, resp.Limits{MaxBulk: s.cfg.MaxBulkLen, MaxArgs: s.cfg.MaxArgs, MaxQuery: s.cfg.ClientQueryBufferLimit}),
		created: time.Now(),
	}
}

func (c *conn) serve() {
	defer c.s.removeConn(c)
	defer c.nc.Close()
	defer func() {
		if p := recover(); p != nil {
			// A bug must not take the daemon down: log it and drop this
			// connection only.
			c.s.logger.Error("panic serving a connection", "conn", c.id, "panic", p, "stack", string(debug.Stack()))
			c.w.B = c.w.B[:0]
			c.w.Err("ERR internal error; the connection is closed")
			c.flush()
		}
	}()
	idle := c.s.cfg.IdleTimeout
	for {
		if idle > 0 {
			c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		if c.s.shutting.Load() {
			return
		}
		n, rerr := c.readBatch()
		if n > 0 {
			c.runBatch(c.argBufs[:n])
			c.own = nil // an idle connection holds no chunk
			for i := range n {
				clear(c.argBufs[i]) // drop references to big values
				if cap(c.argBufs[i]) > 1024 {
					c.argBufs[i] = nil
				}
			}
		}
		c.rd.ResetArena()
		if rerr != nil {
			var pe *resp.ProtocolError
			switch {
			case errors.As(rerr, &pe):
				c.s.metrics.protocolErrors.Inc()
				c.s.logger.Debug("protocol error; closing the connection", "conn", c.id, "remote", c.nc.RemoteAddr().String(), "err", pe.Msg)
				c.w.Err(protocolReply(pe))
			case errors.Is(rerr, os.ErrDeadlineExceeded) && !c.s.shutting.Load():
				c.s.logger.Debug("idle timeout; closing the connection", "conn", c.id)
			}
			c.flush()
			return
		}
		if err := c.flush(); err != nil || c.quit {
			return
		}
	}
}

// readBatch parses one command, blocking, and then every further command
// the client has already sent whole (a command still arriving is left for
// the next batch, so the ones before it are answered at once), up to the
// batch bounds. It returns the number of commands parsed into c.argBufs and the
// error that stopped it, if any (the commands before it are still run).
func (c *conn) readBatch() (int, error) {
	n, size := 0, 0
	for {
		if n == len(c.argBufs) {
			c.argBufs = append(c.argBufs, nil)
		}
		args, err := c.rd.ReadCommand(c.argBufs[n])
		if err != nil {
			return n, err
		}
		if args != nil {
			c.argBufs[n] = args
			n++
			for _, a := range args {
				size += len(a)
			}
		}
		if n > 0 && (!c.rd.Ready() || n >= maxBatch || size >= maxBatchBytes) {
			c.ownFor = size + ownedPerCmd*n
			return n, nil
		}
	}
}

// protocolReply is the error reply to malformed input: Redis's words, and
// for a limit cruzd sets, the flag and its value.
func protocolReply(pe *resp.ProtocolError) string {
	msg := "ERR " + pe.Error()
	switch pe.Limit {
	case resp.LimitArgs:
		msg += " (more than the " + itoa(int(pe.Max)) + " arguments --max-args allows)"
	case resp.LimitBulk:
		msg += " (more than the " + strconv.FormatInt(pe.Max, 10) + " bytes --max-bulk-len allows)"
	case resp.LimitQuery:
		msg += " (more than the " + strconv.FormatInt(pe.Max, 10) + " bytes --client-query-buffer-limit allows)"
	}
	return msg
}

// flush writes the replies of the batch.
func (c *conn) flush() error {
	if len(c.w.B) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.w.B)
	if cap(c.w.B) > keepReplyBuf {
		c.w.B = nil
	} else {
		c.w.B = c.w.B[:0]
	}
	return err
}

// lookup finds a command by name, case-insensitively, without allocating.
func (c *conn) lookup(name []byte) *cmdSpec {
	var buf [24]byte
	if len(name) > len(buf) {
		return nil
	}
	for i, ch := range name {
		if ch >= 'A' && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		buf[i] = ch
	}
	return c.s.specs[string(buf[:len(name)])]
}

// runBatch runs a batch of commands in order. Runs of consecutive point
// commands (commands on keys named in their arguments) run as one
// transaction; every other command is a batch boundary.
func (c *conn) runBatch(batch [][][]byte) {
	if cap(c.specs) < len(batch) {
		c.specs = make([]*cmdSpec, len(batch))
	}
	specs := c.specs[:len(batch)]
	for i, args := range batch {
		specs[i] = c.lookup(args[0])
	}
	c.s.totalCmds.Add(int64(len(batch)))
	// One clock read a command (and one a batch): a command's duration
	// runs from the previous command's end, the first's from here, so a
	// linearizable read's catch-up (readSync) counts to the first command.
	now := time.Now()
	c.active = now
	if sp := specs[len(specs)-1]; sp != nil {
		c.lastCmd = sp.name
	}
	if err := c.readSync(specs); err != nil {
		c.errorAll(len(batch), err)
		return
	}
	for i := 0; i < len(batch) && !c.quit; {
		args, spec := batch[i], specs[i]
		start := now
		switch {
		case spec == nil:
			c.s.metrics.unknownCommands.Inc()
			c.w.Err(unknownCommand(args))
			if c.inMulti {
				c.multiDirty = true
			}
			i++
			continue
		case !c.authorized(spec):
		case !spec.arityOK(len(args)):
			c.w.Err("ERR wrong number of arguments for '" + spec.name + "' command")
			if c.inMulti {
				c.multiDirty = true
			}
		case c.inMulti && spec.flags&flagNoQueue == 0:
			c.queue(spec, args)
		case spec.flags&flagPoint != 0 && !c.inMulti:
			j := i + 1
			for j < len(batch) && specs[j] != nil && specs[j].flags&flagPoint != 0 && specs[j].arityOK(len(batch[j])) {
				j++
			}
			c.runPoint(batch[i:j], specs[i:j])
			now = time.Now()
			d := now.Sub(start).Seconds()
			for k := i; k < j; {
				// A pipeline's run is mostly one command: count each
				// command's calls with one Add.
				sp, m := specs[k], k+1
				for m < j && specs[m] == sp {
					m++
				}
				sp.calls.Add(float64(m - k))
				for range m - k {
					sp.dur.Observe(d)
				}
				k = m
			}
			i = j
			continue
		default:
			spec.run(c, nil, args)
		}
		spec.calls.Inc()
		now = time.Now()
		spec.dur.Observe(now.Sub(start).Seconds())
		i++
	}
}

// unknownCommand is Redis's error for an unknown command. Redis formats
// the name and arguments with printf's %.*s, so each stops at its first NUL
// byte, and the arguments shown are cut at 128 bytes in all.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(cString(args[0], 128))
	b.WriteString("', with args beginning with: ")
	n := 0
	for _, a := range args[1:] {
		if n >= 128 {
			break
		}
		a = cString(a, 128-n)
		b.WriteByte('\'')
		b.Write(a)
		b.WriteString("' ")
		n += len(a) + 3
	}
	return b.String()
}

// cString is what printf's %.*s prints of a with precision max: a up to its
// first NUL byte, at most max bytes.
func cString(a []byte, max int) []byte {
	if i := bytes.IndexByte(a, 0); i >= 0 {
		a = a[:i]
	}
	return a[:min(len(a), max)]
}

// runPoint runs a run of point commands as one transaction: read-only if
// none of them writes, else through the combiner, which commits it with other
// connections' batches in one transaction. The replies are kept only if it
// commits; on a conflict the whole run is re-run (these are plain commands,
// so that is what running them one by one would have done).
func (c *conn) runPoint(batch [][][]byte, specs []*cmdSpec) {
	db := c.s.db
	writable := false
	for _, sp := range specs {
		if sp.flags&flagWrite != 0 {
			writable = true
			break
		}
	}
	if !writable {
		tx, err := db.Begin(c.s.ctx, false)
		if err != nil {
			c.errorAll(len(batch), err)
			return
		}
		c.runReads(tx, batch, specs) // runs of GETs with one GetMany (getmany.go)
		tx.Rollback()
		return
	}

	// Writing batches commit through the combiner, together with those of
	// other connections (combine.go).
	c.s.comb.run(c, batch, specs)
}

// errorAll replies err to n commands.
func (c *conn) errorAll(n int, err error) {
	msg := errText(err)
	for range n {
		c.w.Err(msg)
	}
}

// errText is the Redis error reply for a database error.
func errText(err error) string {
	var re replyError
	if errors.As(err, &re) {
		return string(re)
	}
	s := err.Error()
	for strings.HasPrefix(s, "cruzdb: ") {
		s = strings.TrimPrefix(s, "cruzdb: ")
	}
	return "ERR " + s
}
