package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/etcdlog"
	"github.com/cruzlog/cruzdb/log/piggyback"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// clusterConfig selects the etcd log: every cruzd on the same etcd and log
// name serves one database.
type clusterConfig struct {
	EtcdEndpoints   string // comma-separated URLs; empty: the embedded log in --data-dir
	LogName         string
	EtcdCACert      string
	EtcdCert        string
	EtcdKey         string
	ReadConsistency string // local or linearizable
}

func defaultClusterConfig() clusterConfig {
	return clusterConfig{LogName: "cruzd", ReadConsistency: "local"}
}

func clusterFlags(fs *flag.FlagSet, c *clusterConfig) {
	fs.StringVar(&c.EtcdEndpoints, "etcd-endpoints", c.EtcdEndpoints, "`URL[,URL...]` of an etcd cluster: keep the log there (log/etcdlog) instead of in --data-dir, so that every cruzd on the same etcd and --log-name serves one database")
	fs.StringVar(&c.LogName, "log-name", c.LogName, "`name` of the log in etcd (with --etcd-endpoints)")
	fs.StringVar(&c.EtcdCACert, "etcd-cacert", c.EtcdCACert, "`file` of CA certificates that sign etcd's server certificates (TLS to etcd)")
	fs.StringVar(&c.EtcdCert, "etcd-cert", c.EtcdCert, "client certificate `file` for etcd (with --etcd-key)")
	fs.StringVar(&c.EtcdKey, "etcd-key", c.EtcdKey, "client key `file` for etcd (with --etcd-cert)")
	fs.StringVar(&c.ReadConsistency, "read-consistency", c.ReadConsistency, "`mode` of reads: local (this node's replayed state) or linearizable (a read first catches up with the log's tail, so it sees every write acknowledged by any node before it)")
}

func (c *clusterConfig) enabled() bool { return c.EtcdEndpoints != "" }

func (c *clusterConfig) endpoints() []string {
	var eps []string
	for _, e := range strings.Split(c.EtcdEndpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return eps
}

func (c *clusterConfig) validate() error {
	switch {
	case c.ReadConsistency != "local" && c.ReadConsistency != "linearizable":
		return fmt.Errorf("--read-consistency %q: want local or linearizable", c.ReadConsistency)
	case c.EtcdEndpoints != "" && len(c.endpoints()) == 0:
		return fmt.Errorf("--etcd-endpoints %q names no endpoint", c.EtcdEndpoints)
	case (c.EtcdCert == "") != (c.EtcdKey == ""):
		return errors.New("--etcd-cert and --etcd-key go together")
	case !c.enabled() && (c.EtcdCACert != "" || c.EtcdCert != ""):
		return errors.New("--etcd-cacert, --etcd-cert and --etcd-key need --etcd-endpoints")
	}
	if c.enabled() {
		if err := checkLogName(c.LogName); err != nil {
			return err
		}
	}
	return nil
}

func checkLogName(name string) error {
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("--log-name %q: want 1 to 200 bytes without '/'", name)
	}
	return nil
}

// etcdTLS is the TLS configuration for etcd, nil without any TLS flag (an
// https endpoint then uses the system's roots).
func (c *clusterConfig) etcdTLS() (*tls.Config, error) {
	if c.EtcdCACert == "" && c.EtcdCert == "" {
		for _, e := range c.endpoints() {
			if strings.HasPrefix(e, "https://") {
				return &tls.Config{MinVersion: tls.VersionTLS12}, nil
			}
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.EtcdCACert != "" {
		pem, err := os.ReadFile(c.EtcdCACert)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-cacert %s: no PEM certificate in it", c.EtcdCACert)
		}
		cfg.RootCAs = pool
	}
	if c.EtcdCert != "" {
		cert, err := tls.LoadX509KeyPair(c.EtcdCert, c.EtcdKey)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// etcdLog is the etcd log a cruzd opened, with the client it owns.
type etcdLog struct {
	*etcdlog.Log
	cli *clientv3.Client
}

func (l *etcdLog) Close() error {
	err := l.Log.Close()
	if cerr := l.cli.Close(); err == nil && cerr != nil && !errors.Is(cerr, context.Canceled) {
		err = cerr
	}
	return err
}

// openEtcdLog connects to etcd and opens the log.
func (s *server) openEtcdLog() (log.Log, error) {
	c := &s.cfg.Cluster
	tlsCfg, err := c.etcdTLS()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:        c.endpoints(),
		DialTimeout:      5 * time.Second,
		TLS:              tlsCfg,
		Logger:           zap.NewNop(),
		AutoSyncInterval: 0,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", c.EtcdEndpoints, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := etcdlog.Open(ctx, cli, c.LogName, nil)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("open log %q on etcd %s: %w", c.LogName, c.EtcdEndpoints, err)
	}
	s.logger.Info("log in etcd", "endpoints", c.EtcdEndpoints, "log_name", c.LogName, "read_consistency", c.ReadConsistency)
	return &etcdLog{Log: l, cli: cli}, nil
}

// keepTailWaiter gives the wrapped log base's WaitTail, so that the
// processor waits on the log's watch instead of polling the timed wrapper.
func keepTailWaiter(wrapped, base log.Log) log.Log {
	tw, ok := base.(log.TailWaiter)
	if !ok {
		return wrapped
	}
	if w, ok := wrapped.(*timedRangeBatchLog); ok {
		if tn, ok := base.(log.TailNotifier); ok {
			// seglog: the processor parks on a tail notice instead of
			// waiting on WaitTail (processor/local.go).
			n := &timedNotifyLog{timedRangeBatchLog: w, TailWaiter: tw, TailNotifier: tn}
			on, ok1 := base.(log.OrderNotifier)
			cr, ok2 := base.(log.CheckedReader)
			lz, ok3 := base.(piggyback.LazyAppender)
			lzb, ok4 := base.(piggyback.LazyBatchAppender)
			if ok1 && ok2 && ok3 && ok4 {
				return &timedLocalLog{timedNotifyLog: n, OrderNotifier: on, CheckedReader: cr, lazy: lz, lazyB: lzb}
			}
			return n
		}
		return &timedWaitLog{timedRangeBatchLog: w, TailWaiter: tw}
	}
	return wrapped
}

type timedWaitLog struct {
	*timedRangeBatchLog
	log.TailWaiter
}

type timedNotifyLog struct {
	*timedRangeBatchLog
	log.TailWaiter
	log.TailNotifier
}

// readSync catches up with the log's tail before a batch that reads, when
// reads are linearizable: a read then sees every write any node
// acknowledged before it arrived.
func (c *conn) readSync(specs []*cmdSpec) error {
	if c.s.cfg.Cluster.ReadConsistency != "linearizable" || (!c.authed && c.s.cfg.Security.RequirePass != "") {
		return nil
	}
	reads := false
	for _, sp := range specs {
		if sp == nil || sp.flags&flagWrite == 0 {
			reads = true
			break
		}
	}
	if !reads {
		return nil
	}
	if err := c.s.db.Sync(c.s.ctx); err != nil {
		return fmt.Errorf("catch up with the log for a linearizable read: %w", err)
	}
	return nil
}

// clusterInfo is INFO's description of where the log is.
func (s *server) clusterInfo() [][2]string {
	c := &s.cfg.Cluster
	if !c.enabled() {
		return [][2]string{{"log_backend", "embedded"}}
	}
	return [][2]string{
		{"log_backend", "etcd"},
		{"log_name", c.LogName},
		{"etcd_endpoints", c.EtcdEndpoints},
		{"read_consistency", c.ReadConsistency},
	}
}

// timedLocalLog is a timedNotifyLog over seglog that keeps the rest of what
// seglog offers its database, which the wrapper used to hide: the order of
// a group before it is durable (log.OrderNotifier: replay applies a group
// while the log syncs it), checked reads (log.CheckedReader: replay reads
// an afterimage's header, not the whole entry), and lazy appends
// (log/piggyback: an afterimage waits to share a group commit with an
// intention instead of starting one). Lazy appends are timed like others.
type timedLocalLog struct {
	*timedNotifyLog
	log.OrderNotifier
	log.CheckedReader
	lazy  piggyback.LazyAppender
	lazyB piggyback.LazyBatchAppender
}

func (l *timedLocalLog) AppendLazy(ctx context.Context, data []byte, within time.Duration) (log.Position, bool, error) {
	start := time.Now()
	p, shared, err := l.lazy.AppendLazy(ctx, data, within)
	if err == nil {
		l.observe(data, time.Since(start).Seconds())
	}
	return p, shared, err
}

func (l *timedLocalLog) AppendLazyBatch(ctx context.Context, data [][]byte, within time.Duration) ([]log.Position, bool, error) {
	start := time.Now()
	p, shared, err := l.lazyB.AppendLazyBatch(ctx, data, within)
	if err == nil {
		d := time.Since(start).Seconds()
		for _, e := range data {
			l.observe(e, d)
		}
	}
	return p, shared, err
}
