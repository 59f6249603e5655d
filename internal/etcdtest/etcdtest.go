// Package etcdtest starts a real etcd member inside a test process, on
// loopback ports, for tests of code that keeps its log in etcd.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Start starts a one-member etcd in a temporary directory and returns its
// client URL; the member stops when the test ends. Fsync is off: tests
// check semantics, and kill processes, not the machine.
func Start(t testing.TB) string {
	t.Helper()
	var last error
	for range 3 {
		c, p := freeURL(), freeURL()
		cfg := embed.NewConfig()
		cfg.Name = "test"
		cfg.Dir = t.TempDir()
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{c}, []url.URL{c}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{p}, []url.URL{p}
		cfg.InitialCluster = "test=" + p.String()
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cfg.UnsafeNoFsync = true
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			last = err // most likely a port taken meanwhile: try others
			continue
		}
		select {
		case <-e.Server.ReadyNotify():
			t.Cleanup(e.Close)
			return c.String()
		case err := <-e.Err():
			e.Close()
			last = err
		case <-time.After(60 * time.Second):
			e.Close()
			last = fmt.Errorf("etcd not ready after 60s")
		}
	}
	t.Fatalf("start etcd: %v", last)
	return ""
}

func freeURL() url.URL {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{Scheme: "http", Host: "127.0.0.1:1"}
	}
	defer ln.Close()
	return url.URL{Scheme: "http", Host: ln.Addr().String()}
}
