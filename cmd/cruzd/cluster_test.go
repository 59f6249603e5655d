package main

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/etcdtest"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// clusterNode starts the real binary on the etcd log.
func clusterNode(t *testing.T, bin, etcdURL, name string, extra ...string) *proc {
	t.Helper()
	// Two nodes incrementing one key conflict in the log (each node's key
	// locks only order its own clients), and each conflict is one retry:
	// allow more than the default ten, so that no INCR gives up.
	args := append([]string{"--etcd-endpoints", etcdURL, "--log-name", name, "--read-consistency", "linearizable", "--max-conflict-retries", "1000"}, extra...)
	return startProc(t, bin, t.TempDir(), args...)
}

func nodeClient(t *testing.T, p *proc) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: p.addr, Protocol: 2, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClusterTwoProcesses runs two cruzd processes on one etcd log (etcd
// embedded in the test) and checks, through go-redis and redis-cli, that
// writes through one node are read through the other with linearizable
// reads, that concurrent INCRs through both sum exactly, that a write
// through one node aborts an EXEC WATCHing the key on the other, and that a
// node killed with SIGKILL loses nothing it acknowledged and converges
// when restarted.
func TestClusterTwoProcesses(t *testing.T) {
	t.Parallel() // waits on child processes most of the time
	bin := buildCruzd(t)
	url := etcdtest.Start(t)
	ctx := ctxT(t)
	n1 := clusterNode(t, bin, url, "two")
	n2 := clusterNode(t, bin, url, "two")
	c1, c2 := nodeClient(t, n1), nodeClient(t, n2)

	t.Run("ReadYourWritesAcrossNodes", func(t *testing.T) {
		for i := range 50 {
			w, r := c1, c2
			if i%2 == 1 {
				w, r = c2, c1
			}
			k, v := fmt.Sprintf("ryw:%d", i), fmt.Sprintf("v%d", i)
			if err := w.Set(ctx, k, v, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if got, err := r.Get(ctx, k).Result(); err != nil || got != v {
				t.Fatalf("GET %s on the other node = %q, %v; want %q", k, got, err, v)
			}
		}
	})

	t.Run("RedisCLI", func(t *testing.T) {
		cli, err := exec.LookPath("redis-cli")
		if err != nil {
			t.Skip("redis-cli not installed (.ci/run installs it)")
		}
		run := func(p *proc, args ...string) string {
			host, port, _ := strings.Cut(p.addr, ":")
			out, err := exec.Command(cli, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
			}
			return strings.TrimSpace(string(out))
		}
		if got := run(n1, "SET", "cli:k", "from-node-1"); got != "OK" {
			t.Fatalf("SET = %q", got)
		}
		if got := run(n2, "GET", "cli:k"); got != "from-node-1" {
			t.Fatalf("GET on node 2 = %q", got)
		}
		if got := run(n2, "INCRBY", "cli:n", "5"); got != "5" {
			t.Fatalf("INCRBY = %q", got)
		}
		if got := run(n1, "GET", "cli:n"); got != "5" {
			t.Fatalf("GET on node 1 = %q", got)
		}
		info := run(n1, "INFO", "cruzdb")
		for _, want := range []string{"log_backend:etcd", "log_name:two", "read_consistency:linearizable", "processor_position:", "replay_lag_positions:"} {
			if !strings.Contains(info, want) {
				t.Fatalf("INFO lacks %q:\n%s", want, info)
			}
		}
	})

	t.Run("ConcurrentIncrs", func(t *testing.T) {
		const perClient, clientsPerNode = 40, 4
		var ok, failed atomic.Int64
		var wg sync.WaitGroup
		for _, c := range []*redis.Client{c1, c2} {
			for range clientsPerNode {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range perClient {
						if err := c.Incr(ctx, "counter").Err(); err != nil {
							failed.Add(1)
							t.Logf("INCR: %v", err)
							continue
						}
						ok.Add(1)
					}
				}()
			}
		}
		wg.Wait()
		for _, c := range []*redis.Client{c1, c2} {
			got, err := c.Get(ctx, "counter").Int64()
			if err != nil || got != ok.Load() {
				t.Fatalf("counter = %d, %v; %d INCRs acknowledged (%d failed)", got, err, ok.Load(), failed.Load())
			}
		}
		if failed.Load() != 0 {
			t.Fatalf("%d of %d INCRs failed", failed.Load(), 2*clientsPerNode*perClient)
		}
	})

	t.Run("ExecAbortedByOtherNode", func(t *testing.T) {
		for round := range 3 {
			key := fmt.Sprintf("watched:%d", round)
			if err := c1.Set(ctx, key, "0", 0).Err(); err != nil {
				t.Fatal(err)
			}
			err := c1.Watch(ctx, func(tx *redis.Tx) error {
				if _, err := tx.Get(ctx, key).Result(); err != nil {
					return err
				}
				// Another client writes the key through the other node.
				if err := c2.Set(ctx, key, "other", 0).Err(); err != nil {
					return err
				}
				_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, key, "mine", 0)
					return nil
				})
				return err
			}, key)
			if err != redis.TxFailedErr {
				t.Fatalf("EXEC after a write through the other node: %v, want the transaction aborted", err)
			}
			if got := c1.Get(ctx, key).Val(); got != "other" {
				t.Fatalf("%s = %q after the aborted EXEC", key, got)
			}
		}
		// Without the other node's write, the same EXEC commits.
		err := c1.Watch(ctx, func(tx *redis.Tx) error {
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "watched:0", "mine", 0)
				return nil
			})
			return err
		}, "watched:0")
		if err != nil || c2.Get(ctx, "watched:0").Val() != "mine" {
			t.Fatalf("EXEC without interference: %v", err)
		}
	})

	t.Run("KillNodeConverges", func(t *testing.T) {
		// Writers on node 2 record what it acknowledged; node 2 is killed
		// with SIGKILL while they write.
		var mu sync.Mutex
		acked := map[string]string{}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k, v := fmt.Sprintf("kill:%d:%d", w, i), strconv.Itoa(i)
					if err := c2.Set(ctx, k, v, 0).Err(); err != nil {
						return // the node died
					}
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				}
			}()
		}
		waitUntil(t, "200 acknowledged writes", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= 200
		})
		n2.kill9(t)
		close(stop)
		wg.Wait()
		// Node 1 has every acknowledged write.
		check := func(c *redis.Client, who string) {
			t.Helper()
			for k, v := range acked {
				if got, err := c.Get(ctx, k).Result(); err != nil || got != v {
					t.Fatalf("%s: %s = %q, %v; node 2 acknowledged %q", who, k, got, err, v)
				}
			}
		}
		check(c1, "node 1")
		// More writes through node 1 while node 2 is down.
		if err := c1.Set(ctx, "while-down", "yes", 0).Err(); err != nil {
			t.Fatal(err)
		}
		n2b := clusterNode(t, bin, url, "two")
		c2b := nodeClient(t, n2b)
		check(c2b, "node 2 restarted")
		if got := c2b.Get(ctx, "while-down").Val(); got != "yes" {
			t.Fatalf("restarted node 2 misses a write made while it was down: %q", got)
		}
		if a, b := c1.DBSize(ctx).Val(), c2b.DBSize(ctx).Val(); a != b {
			t.Fatalf("DBSIZE %d on node 1, %d on restarted node 2", a, b)
		}
		t.Logf("%d writes acknowledged by node 2 before SIGKILL", len(acked))
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 60*time.Second, cond)
}
