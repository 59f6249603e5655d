package suite

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"path/filepath"
	"runtime"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log/etcdlog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// The etcd experiment measures log/etcdlog on a real etcd member embedded
// in the bench process (fsync on), against raw etcd Puts of the same size
// and concurrency on the same member in the same run.

func startBenchEtcd(dir string) (string, func(), error) {
	free := func() url.URL {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return url.URL{Scheme: "http", Host: "127.0.0.1:1"}
		}
		defer ln.Close()
		return url.URL{Scheme: "http", Host: ln.Addr().String()}
	}
	c, p := free(), free()
	cfg := embed.NewConfig()
	cfg.Name = "bench"
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{c}, []url.URL{c}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{p}, []url.URL{p}
	cfg.InitialCluster = "bench=" + p.String()
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.QuotaBackendBytes = 8 << 30
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", nil, err
	}
	select {
	case <-srv.Server.ReadyNotify():
	case err := <-srv.Err():
		srv.Close()
		return "", nil, err
	case <-time.After(60 * time.Second):
		srv.Close()
		return "", nil, fmt.Errorf("etcd not ready after 60s")
	}
	return c.String(), srv.Close, nil
}

func etcdClient(ep string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// etcdNodes opens n Logs on one name, each with a client of its own (as
// n machines would have).
type etcdNodes struct {
	clis []*clientv3.Client
	logs []*etcdlog.Log
}

func openEtcdNodes(ep, name string, n int) (*etcdNodes, error) {
	ns := &etcdNodes{}
	for range n {
		cli, err := etcdClient(ep)
		if err != nil {
			ns.close()
			return nil, err
		}
		ns.clis = append(ns.clis, cli)
		l, err := etcdlog.Open(context.Background(), cli, name, &etcdlog.Options{NoCompact: true})
		if err != nil {
			ns.close()
			return nil, err
		}
		ns.logs = append(ns.logs, l)
	}
	return ns, nil
}

func (ns *etcdNodes) close() {
	for _, l := range ns.logs {
		l.Close()
	}
	for _, c := range ns.clis {
		c.Close()
	}
}

func runEtcd(e *Env) error {
	dir, cleanup, err := e.tempDir("etcd")
	if err != nil {
		return err
	}
	defer cleanup()
	ep, stop, err := startBenchEtcd(dir)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	defer stop()
	d := e.pick(3*time.Second, 400*time.Millisecond, 60*time.Millisecond)
	warm := e.pick(300*time.Millisecond, 50*time.Millisecond, 10*time.Millisecond)
	const size = 200
	data := bytes.Repeat([]byte{0x5a}, size)
	seq := 0
	name := func(what string) string { seq++; return fmt.Sprintf("bench-%s-%d", what, seq) }

	// ---- appends vs raw Puts, and nodes sharing one log ----
	conc := pick(e, []int{1, 16, 64}, []int{1, 16, 64}, []int{1, 4})
	type nodeCfg struct{ nodes, per int }
	nodeCfgs := pick(e, []nodeCfg{{1, 64}, {2, 32}, {3, 21}}, []nodeCfg{{1, 64}, {2, 32}, {3, 21}}, []nodeCfg{{1, 4}, {2, 2}})
	raw, app := map[int]*Sample{}, map[int]*Sample{}
	rawLat, appLat := map[int][2]float64{}, map[int][2]float64{}
	nodesRate := map[nodeCfg]*Sample{}
	nodesTxn := map[nodeCfg][2]float64{} // lost fraction, entries per winning transaction
	commitRate := map[int]*Sample{}
	commitNodes := pick(e, []int{1, 2, 3}, []int{1, 2, 3}, []int{1, 2})
	commitClients := pick(e, 64, 16, 4)
	steps := e.steps(e.Runs * (2*len(conc) + len(nodeCfgs) + len(commitNodes)))
	putCli, err := etcdClient(ep)
	if err != nil {
		return err
	}
	defer putCli.Close()
	for run := range e.Runs {
		for _, c := range conc {
			steps.Step("run %d: raw etcd Puts, %d clients", run+1, c)
			prefix := name("raw")
			r, err := drive(c, warm, d, e.Seed, func(cl int, _ *rand.Rand, i uint64) error {
				_, err := putCli.Put(context.Background(), fmt.Sprintf("%s/%d/%d", prefix, cl, i), string(data))
				return err
			})
			if err != nil {
				return fmt.Errorf("raw puts: %w", err)
			}
			if raw[c] == nil {
				raw[c], app[c] = &Sample{}, &Sample{}
			}
			raw[c].Values = append(raw[c].Values, r.rate())
			rawLat[c] = [2]float64{r.quantile(0.5), r.quantile(0.99)}

			steps.Step("run %d: etcdlog appends, %d appenders", run+1, c)
			ns, err := openEtcdNodes(ep, name("appends"), 1)
			if err != nil {
				return err
			}
			r, err = drive(c, warm, d, e.Seed, func(int, *rand.Rand, uint64) error {
				_, err := ns.logs[0].Append(context.Background(), data)
				return err
			})
			ns.close()
			if err != nil {
				return fmt.Errorf("etcdlog appends: %w", err)
			}
			app[c].Values = append(app[c].Values, r.rate())
			appLat[c] = [2]float64{r.quantile(0.5), r.quantile(0.99)}
		}
		for _, nc := range nodeCfgs {
			steps.Step("run %d: %d nodes × %d appenders on one log", run+1, nc.nodes, nc.per)
			ns, err := openEtcdNodes(ep, name("nodes"), nc.nodes)
			if err != nil {
				return err
			}
			var total atomic.Int64
			r, err := drive(nc.nodes*nc.per, warm, d, e.Seed, func(cl int, _ *rand.Rand, _ uint64) error {
				_, err := ns.logs[cl%nc.nodes].Append(context.Background(), data)
				total.Add(1)
				return err
			})
			var txns, lost int64
			for _, l := range ns.logs {
				st := l.Stats()
				txns, lost = txns+st.Txns, lost+st.Lost
			}
			ns.close()
			if txns > lost {
				nodesTxn[nc] = [2]float64{float64(lost) / float64(txns), float64(total.Load()) / float64(txns-lost)}
			}
			if err != nil {
				return fmt.Errorf("%d nodes: %w", nc.nodes, err)
			}
			if nodesRate[nc] == nil {
				nodesRate[nc] = &Sample{}
			}
			nodesRate[nc].Values = append(nodesRate[nc].Values, r.rate())
		}
		for _, n := range commitNodes {
			steps.Step("run %d: cruzdb commits, %d nodes, %d clients in all", run+1, n, commitClients)
			rate, err := etcdCommits(ep, name("commits"), n, commitClients, warm, d, e.Seed)
			if err != nil {
				return err
			}
			if commitRate[n] == nil {
				commitRate[n] = &Sample{}
			}
			commitRate[n].Values = append(commitRate[n].Values, rate)
		}
	}
	t := &Table{
		Name:    "etcd",
		Title:   fmt.Sprintf("etcdlog appends vs raw etcd Puts of %d B on one embedded etcd member, fsync on (%s, %s per point, %d interleaved run(s))", size, e.mode(), d, e.Runs),
		Columns: []string{"appenders", "raw Puts/s", "etcdlog appends/s", "÷ raw", "raw p50/p99 µs", "etcdlog p50/p99 µs"},
	}
	for _, c := range conc {
		t.Add(c, *raw[c], *app[c], app[c].Median()/raw[c].Median(),
			fmt.Sprintf("%.0f / %.0f", rawLat[c][0], rawLat[c][1]), fmt.Sprintf("%.0f / %.0f", appLat[c][0], appLat[c][1]))
	}
	t.Note("raw: clientv3 Put of a new key per operation through one client; etcdlog: Append through one Log (its committer batches concurrent appends into one transaction); latency quantiles from the last run")
	if err := e.Emit(t); err != nil {
		return err
	}
	var groups []string
	rawS, appS := BarSeries{Name: "raw etcd Puts"}, BarSeries{Name: "etcdlog appends"}
	for _, c := range conc {
		groups = append(groups, fmt.Sprintf("%d clients", c))
		rawS.Values = append(rawS.Values, raw[c].Median())
		appS.Values = append(appS.Values, app[c].Median())
	}
	if err := e.BarPlot("etcd", fmt.Sprintf("%d B appends on one embedded etcd member", size), "operations/s", groups, []BarSeries{rawS, appS}); err != nil {
		return err
	}
	one := nodeCfgs[0]
	t = &Table{
		Name:    "etcd-nodes",
		Title:   fmt.Sprintf("nodes appending to one etcdlog (%s, %s per point, %d interleaved run(s))", e.mode(), d, e.Runs),
		Columns: []string{"nodes", "appenders each", "appends/s", "÷ one node", "txns lost", "entries per txn"},
	}
	for _, nc := range nodeCfgs {
		t.Add(nc.nodes, nc.per, *nodesRate[nc], nodesRate[nc].Median()/nodesRate[one].Median(),
			fmt.Sprintf("%.0f %%", 100*nodesTxn[nc][0]), fmt.Sprintf("%.1f", nodesTxn[nc][1]))
	}
	t.Note("each node is a Log with its own etcd client; they contend on the tail key, and a node that loses retries at once with the tail its transaction's Else branch returned; txns lost and entries per (winning) txn are from the last run")
	t.Note("every node, the etcd member and the appenders share this machine's cores, so a second node adds a second watcher and client to the same CPUs; on separate machines only etcd is shared")
	if err := e.Emit(t); err != nil {
		return err
	}
	t = &Table{
		Name:    "etcd-commits",
		Title:   fmt.Sprintf("cruzdb 1-put commits on one etcdlog, %d clients spread over the nodes (%s, %s per point, %d interleaved run(s))", commitClients, e.mode(), d, e.Runs),
		Columns: []string{"nodes", "commits/s", "÷ one node"},
	}
	for _, n := range commitNodes {
		t.Add(n, *commitRate[n], commitRate[n].Median()/commitRate[commitNodes[0]].Median())
	}
	if err := e.Emit(t); err != nil {
		return err
	}

	// ---- follower replay lag ----
	writes := pick(e, 500, 100, 10)
	steps = e.steps(e.Runs)
	var p50s, p99s, maxs Sample
	for run := range e.Runs {
		steps.Step("run %d: follower lag over %d writes", run+1, writes)
		lags, err := followerLag(ep, name("lag"), writes)
		if err != nil {
			return err
		}
		p50s.Values = append(p50s.Values, lags[len(lags)/2])
		p99s.Values = append(p99s.Values, lags[(len(lags)*99)/100])
		maxs.Values = append(maxs.Values, lags[len(lags)-1])
	}
	t = &Table{
		Name:    "etcd-lag",
		Title:   fmt.Sprintf("follower replay lag: a commit acknowledged on node A until node B has replayed it (%d writes, 2 ms apart; %s, %d run(s))", writes, e.mode(), e.Runs),
		Columns: []string{"p50 ms", "p99 ms", "max ms"},
	}
	t.Add(p50s, p99s, maxs)
	t.Note("B learns of new entries from its watch on the log's keys (log.TailWaiter) and reads them from the watch's cache; lag is measured from A's Update returning until B's Stats().Position reaches A's position then")
	return e.Emit(t)
}

// etcdCommits runs clients 1-put transactions spread over n cruzdb nodes
// on one etcd log and returns commits/s.
func etcdCommits(ep, name string, n, clients int, warm, d time.Duration, seed uint64) (float64, error) {
	ns, err := openEtcdNodes(ep, name, n)
	if err != nil {
		return 0, err
	}
	defer ns.close()
	var dbs []*cruzdb.DB
	defer func() {
		for _, db := range dbs {
			db.Close()
		}
	}()
	for _, l := range ns.logs {
		o := cruzdb.DefaultOptions()
		o.Log = l
		db, err := cruzdb.Open("", &o)
		if err != nil {
			return 0, err
		}
		dbs = append(dbs, db)
	}
	val := bytes.Repeat([]byte{0x33}, 100)
	r, err := drive(clients, warm, d, seed, func(c int, _ *rand.Rand, i uint64) error {
		k := fmt.Appendf(nil, "c%d-%d", c, i)
		return dbs[c%n].Update(context.Background(), func(tx *cruzdb.Txn) error { return tx.Put(k, val) })
	})
	if err != nil {
		return 0, err
	}
	return r.rate(), nil
}

// followerLag commits writes on one node and measures, in milliseconds and
// sorted, how long another node takes to replay each.
func followerLag(ep, name string, writes int) ([]float64, error) {
	ns, err := openEtcdNodes(ep, name, 2)
	if err != nil {
		return nil, err
	}
	defer ns.close()
	var dbs []*cruzdb.DB
	defer func() {
		for _, db := range dbs {
			db.Close()
		}
	}()
	for _, l := range ns.logs {
		o := cruzdb.DefaultOptions()
		o.Log = l
		db, err := cruzdb.Open("", &o)
		if err != nil {
			return nil, err
		}
		dbs = append(dbs, db)
	}
	a, b := dbs[0], dbs[1]
	ctx := context.Background()
	var lags []float64
	for i := range writes {
		if err := a.Update(ctx, func(tx *cruzdb.Txn) error { return tx.Put(fmt.Appendf(nil, "k%d", i), []byte("v")) }); err != nil {
			return nil, err
		}
		target := a.Stats().Position
		t0 := time.Now()
		deadline := t0.Add(10 * time.Second)
		for b.Stats().Position < target {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("follower stuck at %d, leader at %d", b.Stats().Position, target)
			}
			runtime.Gosched()
		}
		lags = append(lags, float64(time.Since(t0).Microseconds())/1e3)
		time.Sleep(2 * time.Millisecond)
	}
	sort.Float64s(lags)
	return lags, nil
}
