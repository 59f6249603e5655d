package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log"
)

// server is one cruzd: a database, a RESP listener and an admin HTTP
// server. Start opens everything; Shutdown stops accepting, lets in-flight
// commands finish, flushes and closes the database.
type server struct {
	cfg    config
	logger *slog.Logger

	db      *cruzdb.DB
	log     log.Log // the log the DB runs on (wrapped for metrics)
	ownLog  log.Log // the embedded log this server opened, nil with cfg.log
	metrics *metrics
	specs   map[string]*cmdSpec
	comb    *combiner
	sweep   *sweeper
	// tuning holds CONFIG SET values of Redis tunables cruzd accepts and
	// ignores (compat.go).
	tuning  sync.Map
	locks   *keyLocks
	cursors *cursorTable

	ln      net.Listener
	adminLn net.Listener
	admin   *http.Server

	// ctx bounds database calls; it is cancelled only when a shutdown gives
	// up waiting (in-flight commits otherwise finish).
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	conns    map[*conn]struct{}
	connWG   sync.WaitGroup
	acceptWG sync.WaitGroup
	shutting atomic.Bool
	stopOnce sync.Once
	stopErr  error

	closeOnce sync.Once
	closeErr  error

	nclients   atomic.Int64
	nextID     atomic.Int64
	totalConns atomic.Int64
	totalCmds  atomic.Int64
	started    time.Time

	// beforeExecCommit, if set, runs just before EXEC commits (tests).
	beforeExecCommit atomic.Pointer[func()]
	// beforeBatchCommit, if set, runs just before a writing batch of plain
	// commands commits (tests).
	beforeBatchCommit atomic.Pointer[func()]
}

func newServer(cfg config) (*server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.logger
	if logger == nil {
		logger = newLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	}
	s := &server{
		cfg:     cfg,
		logger:  logger,
		conns:   map[*conn]struct{}{},
		cursors: newCursorTable(1<<16, 64<<20),
		locks:   newKeyLocks(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	s.specs = commandTable(s.metrics)
	return s, nil
}

// Start opens the database and starts serving. On error everything opened
// is closed again.
func (s *server) Start() (err error) {
	s.started = time.Now()
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	if err := s.openDB(); err != nil {
		return err
	}
	s.comb = newCombiner(s)
	s.sweep = newSweeper(s)
	s.ln, err = s.listen(s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.ListenAddr, err)
	}
	if s.cfg.AdminAddr != "" {
		s.adminLn, err = s.listen(s.cfg.AdminAddr)
		if err != nil {
			return fmt.Errorf("admin listen on %s: %w", s.cfg.AdminAddr, err)
		}
		s.admin = &http.Server{Handler: s.adminAuth(s.adminHandler()), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := s.admin.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.logger.Error("admin server stopped", "err", err)
			}
		}()
		s.logger.Info("admin listening", "addr", s.adminLn.Addr().String())
	}
	s.acceptWG.Add(1)
	go s.acceptLoop()
	st := s.db.Stats()
	s.logger.Info("resp listening", "addr", s.ln.Addr().String(), "data_dir", s.cfg.DataDir, "position", uint64(st.Position), "no_sync", s.cfg.NoSync)
	return nil
}

func (s *server) openDB() error {
	base := s.cfg.log
	if base == nil && s.cfg.Cluster.enabled() {
		l, err := s.openEtcdLog()
		if err != nil {
			return err
		}
		s.ownLog, base = l, l
	}
	if base == nil {
		if err := os.MkdirAll(s.cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		// The daemon opens the embedded log itself (as cruzdb.Open would) so
		// that it can time appends; the DB does not own it.
		l, err := openEmbeddedLog(s.cfg.DataDir, s.cfg.NoSync, s.cfg.Checkpoint.SegmentSize)
		if err != nil {
			return fmt.Errorf("open log: %w", err)
		}
		s.ownLog, base = l, l
	}
	s.log = keepTailWaiter(wrapTimed(base, s.metrics), base)
	opts := s.cfg.dbOptions(s.logger.With("component", "cruzdb"))
	opts.Log = s.log
	t0 := time.Now()
	db, err := cruzdb.Open(s.cfg.DataDir, &opts)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	s.db = db
	s.logger.Info("database open", "replayed_to", uint64(db.Stats().Position), "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// Addr is the RESP listener's address.
func (s *server) Addr() net.Addr { return s.ln.Addr() }

// AdminAddr is the admin listener's address, nil if disabled.
func (s *server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

func (s *server) acceptLoop() {
	defer s.acceptWG.Done()
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.shutting.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary trouble (out of file descriptors): back off.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else {
				delay = min(2*delay, time.Second)
			}
			s.logger.Warn("accept failed; retrying", "err", err, "in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.metrics.connections.Inc()
		s.totalConns.Add(1)
		if s.nclients.Add(1) > int64(s.cfg.MaxClients) {
			s.nclients.Add(-1)
			s.metrics.rejected.Inc()
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte("-ERR max number of clients reached\r\n"))
			nc.Close()
			continue
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.shutting.Load() {
			s.mu.Unlock()
			s.nclients.Add(-1)
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.connWG.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.nclients.Add(-1)
	s.connWG.Done()
}

// Shutdown stops accepting connections, wakes idle ones, waits for
// in-flight commands to finish (until ctx ends; then connections are
// closed hard), flushes and closes the database. It is safe to call more
// than once; later calls return the first call's result.
func (s *server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown(ctx) })
	return s.stopErr
}

func (s *server) shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	if s.ln != nil {
		s.ln.Close()
	}
	s.acceptWG.Wait()
	// Wake every connection blocked reading; a connection executing a batch
	// finishes it, writes its replies and then closes.
	s.mu.Lock()
	for c := range s.conns {
		c.nc.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.logger.Warn("shutdown: in-flight commands did not finish in time; closing connections")
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
	var errs []error
	if s.db != nil {
		fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := s.db.Flush(fctx); err != nil {
			errs = append(errs, fmt.Errorf("flush: %w", err))
		}
		cancel()
	}
	if err := s.closeAll(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeAll closes the admin server, the database and the log, once.
func (s *server) closeAll() error {
	s.closeOnce.Do(func() { s.closeErr = s.doClose() })
	return s.closeErr
}

func (s *server) doClose() error {
	var errs []error
	if s.admin != nil {
		actx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.admin.Shutdown(actx); err != nil {
			s.admin.Close()
		}
		cancel()
	} else if s.adminLn != nil {
		s.adminLn.Close()
	}
	if s.ln != nil && !s.shutting.Load() {
		s.ln.Close()
	}
	if s.comb != nil {
		s.comb.close() // no connection is left to submit
	}
	if s.sweep != nil {
		s.sweep.close()
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
	}
	if s.ownLog != nil {
		if err := s.ownLog.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close log: %w", err))
		}
	}
	s.cancel()
	return errors.Join(errs...)
}

// logTail is the log's tail, or 0 if it cannot be read.
func (s *server) logTail() uint64 {
	if s.log == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(s.ctx, time.Second)
	defer cancel()
	t, err := s.log.Tail(ctx)
	if err != nil {
		return 0
	}
	return uint64(t)
}

// healthy checks that the database answers a read.
func (s *server) healthy(ctx context.Context) error {
	db := s.db
	if db == nil || s.shutting.Load() {
		return errors.New("shutting down")
	}
	return db.View(ctx, func(tx *cruzdb.Txn) error {
		_, err := tx.Get([]byte("\x00healthz"))
		if errors.Is(err, cruzdb.ErrNotFound) {
			return nil
		}
		return err
	})
}
