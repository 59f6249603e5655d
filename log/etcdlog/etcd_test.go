package etcdlog

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// The package's tests share one real etcd member, started in this process
// on loopback ports; each test uses logs of its own names.

var (
	shared struct {
		once sync.Once
		dir  string
		e    *embed.Etcd
		url  string
		err  error
	}
	logSeq atomic.Int64
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	code := m.Run()
	if shared.e != nil {
		shared.e.Close()
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// freeURL returns an http URL on a loopback port free at the time.
func freeURL(t testing.TB) url.URL {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// The kernel may give a port just closed to the next Listen: a
		// cluster then got one URL twice ("has duplicate url").
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return url.URL{Scheme: "http", Host: addr}
		}
	}
}

// handedOut holds the addresses freeURL returned, none returned twice.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// member is the configuration of one embedded etcd member.
func memberConfig(t testing.TB, name, dir string, client, peer url.URL) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", name, peer.String())
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// The tests check semantics, which fsync does not change; the member
	// loss test stops members, it does not crash the machine.
	cfg.UnsafeNoFsync = true
	return cfg
}

func startMember(t testing.TB, cfg *embed.Config) (*embed.Etcd, error) {
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd member %s not ready after 60s", cfg.Name)
	}
}

// sharedEtcd returns the client URL of the package's etcd member.
func sharedEtcd(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "etcdlog-test-")
		if shared.err != nil {
			return
		}
		for try := 0; try < 3; try++ {
			c, p := freeURL(t), freeURL(t)
			shared.e, shared.err = startMember(t, memberConfig(t, "shared", shared.dir+fmt.Sprintf("/m%d", try), c, p))
			if shared.err == nil {
				shared.url = c.String()
				return
			}
		}
	})
	if shared.err != nil {
		t.Fatalf("start etcd: %v", shared.err)
	}
	return shared.url
}

func newClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// uniqueName returns a log name no other test uses.
func uniqueName(t testing.TB) string {
	n := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	if len(n) > 100 {
		n = n[len(n)-100:]
	}
	return fmt.Sprintf("%s-%d", n, logSeq.Add(1))
}

func mustOpen(t testing.TB, cli *clientv3.Client, name string, opts *Options) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, cli, name, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, d, cond)
}
