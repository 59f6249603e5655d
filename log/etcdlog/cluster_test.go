package etcdlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
	"go.etcd.io/etcd/server/v3/embed"
)

// startCluster starts a three-member etcd cluster in this process.
func startCluster(t *testing.T) ([]*embed.Etcd, []string) {
	t.Helper()
	var clients, peers []url.URL
	var initial []string
	for i := range 3 {
		clients, peers = append(clients, freeURL(t)), append(peers, freeURL(t))
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i].String()))
	}
	dir := t.TempDir()
	members := make([]*embed.Etcd, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		cfg := memberConfig(t, fmt.Sprintf("m%d", i), fmt.Sprintf("%s/m%d", dir, i), clients[i], peers[i])
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.TickMs, cfg.ElectionMs = 50, 500
		wg.Add(1)
		go func() {
			defer wg.Done()
			members[i], errs[i] = startMember(t, cfg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, m := range members {
				if m != nil {
					m.Close()
				}
			}
			t.Fatalf("member %d: %v", i, err)
		}
	}
	var eps []string
	for _, c := range clients {
		eps = append(eps, c.String())
	}
	return members, eps
}

// TestClusterLosesMember appends from two Logs (each with a client of all
// three members) while the cluster's leader is stopped. Appends may fail
// while a new leader is elected (their outcome is unknown), but every
// acknowledged one is read back at its position from the two surviving
// members, and positions stay dense and unique.
func TestClusterLosesMember(t *testing.T) {
	t.Parallel() // its own cluster; waits on elections and timeouts
	members, eps := startCluster(t)
	stopped := map[int]bool{}
	closed := make(chan struct{})
	// Registered before the clients' cleanups, so it runs after them: a
	// member's Close waits for its clients' streams to end.
	t.Cleanup(func() {
		for i, m := range members {
			if !stopped[i] {
				m.Close()
			}
		}
		if len(stopped) > 0 {
			<-closed
		}
	})
	name := uniqueName(t)
	// A request to the stopped member hangs until its timeout, then the
	// client moves on to another member.
	opts := &Options{RequestTimeout: 2 * time.Second}
	logs := []*Log{mustOpen(t, newClient(t, eps...), name, opts), mustOpen(t, newClient(t, eps...), name, opts)}
	ctx := t.Context()

	var (
		mu      sync.Mutex
		acked   = map[log.Position][]byte{}
		failed  atomic.Int64
		ackedN  atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		seq     atomic.Int64
		waitAck = func(n int64) {
			waitFor(t, fmt.Sprintf("%d acknowledged appends", n), 60*time.Second, func() bool { return ackedN.Load() >= n })
		}
	)
	for li, l := range logs {
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					data := fmt.Appendf(nil, "l%d-%d", li, seq.Add(1))
					actx, cancel := context.WithTimeout(ctx, 3*time.Second)
					p, err := l.Append(actx, data)
					cancel()
					// Paced, so that the check below reads a few thousand
					// entries, not tens of thousands: load shaping, not a
					// wait (the phases wait on acknowledged counts).
					time.Sleep(20 * time.Millisecond)
					if err != nil {
						failed.Add(1)
						continue
					}
					mu.Lock()
					if _, dup := acked[p]; dup {
						t.Errorf("position %d acknowledged twice", p)
					}
					acked[p] = data
					mu.Unlock()
					ackedN.Add(1)
				}
			}()
		}
	}
	t0 := time.Now()
	waitAck(200)
	t.Logf("200 appends after %v", time.Since(t0))
	leader := -1
	for i, m := range members {
		if m.Server.Leader() == m.Server.MemberID() {
			leader = i
		}
	}
	if leader < 0 {
		leader = 0
	}
	// As a crash would: no leadership transfer. Closing its listeners
	// waits for client streams, so that goes on in the background.
	members[leader].Server.HardStop()
	stopped[leader] = true
	go func() { members[leader].Close(); close(closed) }()
	before := ackedN.Load()
	waitAck(before + 200)
	close(stop)
	wg.Wait()
	t.Logf("200 more after %v", time.Since(t0))
	t.Logf("stopped member %d; %d appends acknowledged, %d failed", leader, ackedN.Load(), failed.Load())

	var live []string
	for i, ep := range eps {
		if !stopped[i] {
			live = append(live, ep)
		}
	}
	check := mustOpen(t, newClient(t, live...), name, nil)
	tail, err := check.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rg sync.WaitGroup
	for r := range 8 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for p := log.Position(r); p < tail; p += 8 {
				got, err := check.Read(ctx, p)
				if err != nil {
					t.Errorf("Read(%d) below the tail %d: %v", p, tail, err)
					return
				}
				if data, ok := acked[p]; ok && !bytes.Equal(got, data) {
					t.Errorf("acknowledged %q at %d reads %q", data, p, got)
					return
				}
			}
		}()
	}
	rg.Wait()
	for p := range acked {
		if p >= tail {
			t.Fatalf("acknowledged position %d at or past the tail %d", p, tail)
		}
	}
	if _, err := check.Read(ctx, tail); !errors.Is(err, log.ErrNotWritten) {
		t.Fatalf("Read(tail %d) = %v", tail, err)
	}
}
