package suite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log"
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

// etcdMember is a fresh embedded etcd member in a fresh directory.
type etcdMember struct {
	ep   string
	stop func()
}

// freshEtcd starts a member of its own for one measured point, so that
// every point starts from the same place: an empty database, no history,
// no compaction debt left by the points before it.
func (e *Env) freshEtcd(what string) (*etcdMember, error) {
	dir, cleanup, err := e.tempDir("etcd-" + what)
	if err != nil {
		return nil, err
	}
	ep, stop, err := startBenchEtcd(dir)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	return &etcdMember{ep: ep, stop: func() { stop(); cleanup() }}, nil
}

// rotate returns s rotated left by k (the order of a run's points).
func rotate[T any](s []T, k int) []T {
	if len(s) == 0 {
		return nil
	}
	k %= len(s)
	return append(append([]T(nil), s[k:]...), s[:k]...)
}

// etcdRound is what the member's counters say about one nodes point.
type etcdRound struct {
	fsyncsPerSec   float64 // WAL fsyncs per second
	propsPerFsync  float64 // committed raft proposals per fsync
	walPerFsync    float64 // WAL bytes written per fsync
	recvPerFsync   float64 // gRPC bytes received from clients per fsync
	sentPerFsync   float64 // gRPC bytes sent to clients (answers, watch events) per fsync
	fsyncMillis    float64 // mean fsync duration
	roundMillis    float64 // wall time per fsync
	bytesPerAppend float64 // WAL bytes per append
}

func runEtcd(e *Env) error {
	d := e.pick(3*time.Second, 400*time.Millisecond, 60*time.Millisecond)
	warm := e.pick(300*time.Millisecond, 50*time.Millisecond, 10*time.Millisecond)
	const size = 200
	data := bytes.Repeat([]byte{0x5a}, size)
	seq := 0
	name := func(what string) string { seq++; return fmt.Sprintf("bench-%s-%d", what, seq) }

	// ---- appends vs raw Puts, and nodes sharing one log ----
	//
	// Every point of every run gets a fresh member in a fresh directory
	// (freshEtcd), so no point inherits another's data, history or
	// compaction; and the order of the points within each group turns from
	// run to run (rotate), so that no configuration always goes first or
	// last as the machine's load drifts.
	conc := pick(e, []int{1, 16, 64}, []int{1, 16, 64}, []int{1, 4})
	type nodeCfg struct{ nodes, per int }
	nodeCfgs := pick(e, []nodeCfg{{1, 64}, {2, 32}, {3, 21}}, []nodeCfg{{1, 64}, {2, 32}, {3, 21}}, []nodeCfg{{1, 4}, {2, 2}})
	raw, app := map[int]*Sample{}, map[int]*Sample{}
	rawLat, appLat := map[int][2]float64{}, map[int][2]float64{}
	nodesRate := map[nodeCfg]*Sample{}
	nodesTxn := map[nodeCfg][5]float64{} // lost fraction, entries per landed transaction, landed by a guess, waited to grow, mean wait µs
	nodesEtcd := map[nodeCfg]*[]etcdRound{}
	commitRate := map[int]*Sample{}
	commitUnknown := map[int]uint64{}
	commitNodes := pick(e, []int{1, 2, 3}, []int{1, 2, 3}, []int{1, 2})
	commitClients := pick(e, 64, 16, 4)
	steps := e.steps(e.Runs * (2*len(conc) + len(nodeCfgs) + len(commitNodes)))
	for run := range e.Runs {
		for _, c := range rotate(conc, run) {
			if raw[c] == nil {
				raw[c], app[c] = &Sample{}, &Sample{}
			}
			for _, which := range rotate([]string{"raw", "appends"}, run) {
				m, err := e.freshEtcd(which)
				if err != nil {
					return err
				}
				var r driveResult
				if which == "raw" {
					steps.Step("run %d: raw etcd Puts, %d clients", run+1, c)
					r, err = etcdPuts(m.ep, name("raw"), c, data, warm, d, e.Seed)
					if err == nil {
						raw[c].Values = append(raw[c].Values, r.rate())
						rawLat[c] = [2]float64{r.quantile(0.5), r.quantile(0.99)}
					}
				} else {
					steps.Step("run %d: etcdlog appends, %d appenders", run+1, c)
					r, err = etcdAppends(m.ep, name("appends"), c, data, warm, d, e.Seed)
					if err == nil {
						app[c].Values = append(app[c].Values, r.rate())
						appLat[c] = [2]float64{r.quantile(0.5), r.quantile(0.99)}
					}
				}
				m.stop()
				if err != nil {
					return fmt.Errorf("%s, %d clients: %w", which, c, err)
				}
			}
		}
		for _, nc := range rotate(nodeCfgs, run) {
			steps.Step("run %d: %d nodes × %d appenders on one log", run+1, nc.nodes, nc.per)
			m, err := e.freshEtcd("nodes")
			if err != nil {
				return err
			}
			ns, err := openEtcdNodes(m.ep, name("nodes"), nc.nodes)
			if err != nil {
				m.stop()
				return err
			}
			var total atomic.Int64
			before, _ := etcdMetrics(m.ep)
			r, err := drive(nc.nodes*nc.per, warm, d, e.Seed, func(cl int, _ *rand.Rand, _ uint64) error {
				_, err := ns.logs[cl%nc.nodes].Append(context.Background(), data)
				total.Add(1)
				return err
			})
			after, merr := etcdMetrics(m.ep)
			var txns, lost, won, waits int64
			var waited time.Duration
			for _, l := range ns.logs {
				st := l.Stats()
				txns, lost, won, waits = txns+st.Txns, lost+st.Lost, won+st.NestedWon, waits+st.GrowWaits
				waited += st.GrowWaited
			}
			ns.close()
			m.stop()
			if err != nil {
				return fmt.Errorf("%d nodes: %w", nc.nodes, err)
			}
			if txns > lost {
				nodesTxn[nc] = [5]float64{float64(lost) / float64(txns), float64(total.Load()) / float64(txns-lost), float64(won) / float64(txns), float64(waits) / float64(txns), float64(waited.Microseconds()) / float64(max(waits, 1))}
			}
			if nodesRate[nc] == nil {
				nodesRate[nc], nodesEtcd[nc] = &Sample{}, &[]etcdRound{}
			}
			nodesRate[nc].Values = append(nodesRate[nc].Values, r.rate())
			var er etcdRound
			if merr == nil && before != nil {
				if fs := after.fsyncs - before.fsyncs; fs > 0 {
					secs := (warm + d).Seconds()
					er = etcdRound{
						fsyncsPerSec:  fs / secs,
						propsPerFsync: (after.proposals - before.proposals) / fs,
						walPerFsync:   (after.walBytes - before.walBytes) / fs,
						recvPerFsync:  (after.recvBytes - before.recvBytes) / fs,
						sentPerFsync:  (after.sentBytes - before.sentBytes) / fs,
						fsyncMillis:   1e3 * (after.fsyncSecs - before.fsyncSecs) / fs,
						roundMillis:   1e3 * secs / fs,
					}
					if n := total.Load(); n > 0 {
						er.bytesPerAppend = (after.walBytes - before.walBytes) / float64(n)
					}
				}
			}
			*nodesEtcd[nc] = append(*nodesEtcd[nc], er)
			e.progressf("run %d: %d nodes × %d: %.0f appends/s, %.0f fsyncs/s, %.1f appends per fsync, fsync %.2f ms, round %.2f ms, %.0f WAL B per fsync, lost %.0f %%",
				run+1, nc.nodes, nc.per, r.rate(), er.fsyncsPerSec, r.rate()/max(er.fsyncsPerSec, 1), er.fsyncMillis, er.roundMillis, er.walPerFsync, 100*nodesTxn[nc][0])
		}
		for _, n := range rotate(commitNodes, run) {
			steps.Step("run %d: cruzdb commits, %d nodes, %d clients in all", run+1, n, commitClients)
			m, err := e.freshEtcd("commits")
			if err != nil {
				return err
			}
			rate, unknown, err := etcdCommits(m.ep, name("commits"), n, commitClients, warm, d, e.Seed)
			m.stop()
			if err != nil {
				return err
			}
			if commitRate[n] == nil {
				commitRate[n] = &Sample{}
			}
			commitUnknown[n] += unknown
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
		Title:   fmt.Sprintf("nodes appending to one etcdlog, a fresh etcd member per point (%s, %s per point, %d run(s), order rotated run by run)", e.mode(), d, e.Runs),
		Columns: []string{"nodes", "appenders each", "appends/s", "÷ one node", "÷ one node, per run", "per-run ratios", "txns lost", "landed by a guess", "waited to grow / mean wait", "entries per txn", "etcd fsyncs/s", "appends per fsync", "txns per fsync", "WAL bytes per fsync", "gRPC in / out bytes per fsync", "WAL bytes per append", "fsync / round ms"},
	}
	for _, nc := range nodeCfgs {
		var paired Sample // the ratio within each run, where both points met the same load
		var list []string
		for i, v := range nodesRate[nc].Values {
			paired.Values = append(paired.Values, v/nodesRate[one].Values[i])
			list = append(list, fmt.Sprintf("%.2f", v/nodesRate[one].Values[i]))
		}
		med := func(f func(etcdRound) float64) float64 {
			var s Sample
			for i, er := range *nodesEtcd[nc] {
				if er.fsyncsPerSec > 0 {
					if f == nil { // appends per fsync
						s.Values = append(s.Values, nodesRate[nc].Values[i]/er.fsyncsPerSec)
					} else {
						s.Values = append(s.Values, f(er))
					}
				}
			}
			return s.Median()
		}
		t.Add(nc.nodes, nc.per, *nodesRate[nc], nodesRate[nc].Median()/nodesRate[one].Median(), paired, strings.Join(list, " "),
			fmt.Sprintf("%.0f %%", 100*nodesTxn[nc][0]), fmt.Sprintf("%.0f %%", 100*nodesTxn[nc][2]), fmt.Sprintf("%.0f %% / %.0f µs", 100*nodesTxn[nc][3], nodesTxn[nc][4]), fmt.Sprintf("%.1f", nodesTxn[nc][1]),
			fmt.Sprintf("%.0f", med(func(r etcdRound) float64 { return r.fsyncsPerSec })), fmt.Sprintf("%.1f", med(nil)),
			fmt.Sprintf("%.2f", med(func(r etcdRound) float64 { return r.propsPerFsync })),
			fmt.Sprintf("%.0f", med(func(r etcdRound) float64 { return r.walPerFsync })),
			fmt.Sprintf("%.0f / %.0f", med(func(r etcdRound) float64 { return r.recvPerFsync }), med(func(r etcdRound) float64 { return r.sentPerFsync })),
			fmt.Sprintf("%.0f", med(func(r etcdRound) float64 { return r.bytesPerAppend })),
			fmt.Sprintf("%.2f / %.2f", med(func(r etcdRound) float64 { return r.fsyncMillis }), med(func(r etcdRound) float64 { return r.roundMillis })))
	}
	t.Note("each node is a Log with its own etcd client; they contend on the tail key, and a transaction that loses the tail it knew may still land by a guess nested in its Else branch (the tail moves of the node's recent losses); one that lands nothing retries at once with the tail the Else branch returned; a node that lost lately waits briefly (at most a quarter of its recent round trip, ≤ 1 ms) for its batch to reach the size of its recent ones; txns lost (landed nothing), landed by a guess, waited to grow (fraction of txns, and the mean wait) and entries per landed txn are from the last run")
	t.Note("every point runs on a fresh etcd member in a fresh directory (no data, history or compaction left by earlier points), after its own warm-up (%s); the order of the configurations turns by one each run, so each goes first, middle and last in turn", warm)
	t.Note("÷ one node: the median appends/s over the one-node median; per run: the median (and spread) of the ratios of the two points of the same run, seconds apart; per-run ratios: each run's, in run order")
	t.Note("etcd columns are medians over the runs, from the member's /metrics over warm-up and measurement: WAL fsyncs (etcd_disk_wal_fsync_duration_seconds), committed raft proposals (etcd_server_proposals_committed_total), WAL bytes (etcd_disk_wal_write_bytes_total), gRPC bytes from and to clients (etcd_network_client_grpc_received/sent_bytes_total: requests in; answers and watch events out); round ms: wall time per fsync")
	t.Note("every node, the etcd member and the appenders share this machine's cores, so a second node adds a second watcher and client to the same CPUs; on separate machines only etcd is shared")
	if err := e.Emit(t); err != nil {
		return err
	}
	t = &Table{
		Name:    "etcd-commits",
		Title:   fmt.Sprintf("cruzdb 1-put commits on one etcdlog, %d clients spread over the nodes (%s, %s per point, %d interleaved run(s))", commitClients, e.mode(), d, e.Runs),
		Columns: []string{"nodes", "commits/s", "÷ one node", "outcome unknown"},
	}
	for _, n := range commitNodes {
		t.Add(n, *commitRate[n], commitRate[n].Median()/commitRate[commitNodes[0]].Median(), commitUnknown[n])
	}
	t.Note("every point on a fresh etcd member, the order of the node counts turning run by run; outcome unknown: commits of all runs that returned cruzdb.ErrCommitUnknown (a node whose replay fell behind another node's checkpoint and trim resumes past its own intention), counted and left out of commits/s")
	if err := e.Emit(t); err != nil {
		return err
	}

	// ---- follower replay lag ----
	writes := pick(e, 500, 100, 10)
	steps = e.steps(e.Runs)
	var p50s, p99s, maxs, wp50s, wp99s, missS Sample
	for run := range e.Runs {
		steps.Step("run %d: follower lag over %d writes", run+1, writes)
		m, err := e.freshEtcd("lag")
		if err != nil {
			return err
		}
		lags, watch, misses, err := followerLag(m.ep, name("lag"), writes)
		m.stop()
		if err != nil {
			return err
		}
		p50s.Values = append(p50s.Values, lags[len(lags)/2])
		p99s.Values = append(p99s.Values, lags[(len(lags)*99)/100])
		maxs.Values = append(maxs.Values, lags[len(lags)-1])
		wp50s.Values = append(wp50s.Values, watch[len(watch)/2])
		wp99s.Values = append(wp99s.Values, watch[(len(watch)*99)/100])
		missS.Values = append(missS.Values, float64(misses)/float64(writes))
	}
	t = &Table{
		Name:    "etcd-lag",
		Title:   fmt.Sprintf("follower replay lag: a commit acknowledged on node A until node B has replayed it (%d writes, 2 ms apart; %s, %d run(s))", writes, e.mode(), e.Runs),
		Columns: []string{"p50 ms", "p99 ms", "max ms", "watch p50 ms", "watch p99 ms", "B's reads from etcd per write"},
	}
	t.Add(p50s, p99s, maxs, wp50s, wp99s, missS)
	t.Note("B learns of new entries from its watch on the log's keys (log.TailWaiter) and reads them from the watch's cache; lag is measured from A's Update returning until B's Stats().Position reaches A's position then (polled every 100 µs); watch: until B's log (its WaitTail) has passed that position, 0 when it did before A's Update returned; reads from etcd: B's Reads its cache could not answer (etcdlog Stats.CacheMisses)")
	return e.Emit(t)
}

// walCounters are counters of the etcd member's /metrics.
type walCounters struct {
	fsyncs, fsyncSecs, proposals, walBytes, recvBytes, sentBytes float64
}

// etcdMetrics reads the member's WAL fsync and committed proposal counters
// from the /metrics endpoint etcd serves on its client URL.
func etcdMetrics(ep string) (*walCounters, error) {
	resp, err := http.Get(ep + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var c walCounters
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "etcd_disk_wal_fsync_duration_seconds_count":
			c.fsyncs = v
		case "etcd_disk_wal_fsync_duration_seconds_sum":
			c.fsyncSecs = v
		case "etcd_server_proposals_committed_total":
			c.proposals = v
		case "etcd_disk_wal_write_bytes_total":
			c.walBytes = v
		case "etcd_network_client_grpc_received_bytes_total":
			c.recvBytes = v
		case "etcd_network_client_grpc_sent_bytes_total":
			c.sentBytes = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if c.fsyncs == 0 {
		return nil, fmt.Errorf("etcd metrics: no WAL fsync counter at %s/metrics", ep)
	}
	return &c, nil
}

// etcdPuts drives clients raw Puts of a new key each through one client.
func etcdPuts(ep, prefix string, clients int, data []byte, warm, d time.Duration, seed uint64) (driveResult, error) {
	cli, err := etcdClient(ep)
	if err != nil {
		return driveResult{}, err
	}
	defer cli.Close()
	return drive(clients, warm, d, seed, func(cl int, _ *rand.Rand, i uint64) error {
		_, err := cli.Put(context.Background(), fmt.Sprintf("%s/%d/%d", prefix, cl, i), string(data))
		return err
	})
}

// etcdAppends drives clients appenders on one Log.
func etcdAppends(ep, name string, clients int, data []byte, warm, d time.Duration, seed uint64) (driveResult, error) {
	ns, err := openEtcdNodes(ep, name, 1)
	if err != nil {
		return driveResult{}, err
	}
	defer ns.close()
	return drive(clients, warm, d, seed, func(int, *rand.Rand, uint64) error {
		_, err := ns.logs[0].Append(context.Background(), data)
		return err
	})
}

// etcdCommits runs clients 1-put transactions spread over n cruzdb nodes
// on one etcd log and returns commits/s and how many commits (during the
// measurement) ended with their outcome unknown.
func etcdCommits(ep, name string, n, clients int, warm, d time.Duration, seed uint64) (float64, uint64, error) {
	ns, err := openEtcdNodes(ep, name, n)
	if err != nil {
		return 0, 0, err
	}
	defer ns.close()
	dbs, closeDBs, err := openDBs(ns.logs)
	defer closeDBs()
	if err != nil {
		return 0, 0, err
	}
	val := bytes.Repeat([]byte{0x33}, 100)
	r, err := drive(clients, warm, d, seed, func(c int, _ *rand.Rand, i uint64) error {
		k := fmt.Appendf(nil, "c%d-%d", c, i)
		err := dbs[c%n].Update(context.Background(), func(tx *cruzdb.Txn) error { return tx.Put(k, val) })
		if errors.Is(err, cruzdb.ErrCommitUnknown) {
			// A node whose replay fell behind another node's checkpoint
			// and trim resumes past its own intention: counted, not fatal.
			return fmt.Errorf("%w: %w", errSoft, err)
		}
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return r.rate(), r.soft, nil
}

// openDBs opens a DB with default options on each log; closeDBs closes
// those opened, also after an error.
func openDBs(logs []*etcdlog.Log) (dbs []*cruzdb.DB, closeDBs func(), err error) {
	closeDBs = func() {
		for _, db := range dbs {
			db.Close()
		}
	}
	for _, l := range logs {
		o := cruzdb.DefaultOptions()
		o.Log = l
		db, err := cruzdb.Open("", &o)
		if err != nil {
			return dbs, closeDBs, err
		}
		dbs = append(dbs, db)
	}
	return dbs, closeDBs, nil
}

// lagPoll is how often followerLag checks the follower's position.
const lagPoll = 100 * time.Microsecond

// followerLag commits writes on one node and measures, in milliseconds and
// sorted, how long another node takes to replay each (replay), and how long
// its log takes to learn of the write's position through the watch (watch:
// its WaitTail passes it; 0 if that happened before the write returned).
func followerLag(ep, name string, writes int) (replay, watch []float64, misses int64, err error) {
	ns, err := openEtcdNodes(ep, name, 2)
	if err != nil {
		return nil, nil, 0, err
	}
	defer ns.close()
	dbs, closeDBs, err := openDBs(ns.logs)
	defer closeDBs()
	if err != nil {
		return nil, nil, 0, err
	}
	a, b := dbs[0], dbs[1]
	ctx := context.Background()

	// B's log: when did its tail pass each value?
	type seen struct {
		at   time.Time
		tail log.Position
	}
	var mu sync.Mutex
	var tails []seen
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var after log.Position
		for {
			t, err := ns.logs[1].WaitTail(wctx, after)
			if err != nil {
				return
			}
			mu.Lock()
			tails = append(tails, seen{time.Now(), t})
			mu.Unlock()
			after = t
		}
	}()
	defer func() { stop(); <-done }()
	seenAt := func(p log.Position) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		i := sort.Search(len(tails), func(i int) bool { return tails[i].tail > p })
		if i == len(tails) {
			return time.Time{}, false
		}
		return tails[i].at, true
	}

	for i := range writes {
		if err := a.Update(ctx, func(tx *cruzdb.Txn) error { return tx.Put(fmt.Appendf(nil, "k%d", i), []byte("v")) }); err != nil {
			return nil, nil, 0, err
		}
		target := a.Stats().Position
		t0 := time.Now()
		deadline := t0.Add(10 * time.Second)
		// Poll with a short sleep, not a busy loop: a goroutine spinning on
		// runtime.Gosched keeps its P from ever finding the run queues
		// empty, so the P does not poll the network, and on 2 cores the
		// follower's watch stream then waits for sysmon's 10 ms netpoll
		// (the 10-25 ms p99 measured before). The sleep adds up to its
		// length (plus timer slack) to each figure.
		for b.Stats().Position < target {
			if time.Now().After(deadline) {
				return nil, nil, 0, fmt.Errorf("follower stuck at %d, leader at %d", b.Stats().Position, target)
			}
			time.Sleep(lagPoll)
		}
		replayed := time.Now()
		replay = append(replay, float64(replayed.Sub(t0).Microseconds())/1e3)
		// The recording goroutine and B's processor wake on the same
		// signal; if the processor got there first, its time bounds the
		// watch's.
		w, ok := seenAt(target)
		for ; !ok && time.Now().Before(deadline); w, ok = seenAt(target) {
			time.Sleep(50 * time.Microsecond)
		}
		if !ok {
			return nil, nil, 0, fmt.Errorf("follower replayed %d but its log's tail never passed it", target)
		}
		if w.After(replayed) {
			w = replayed
		}
		watch = append(watch, max(0, float64(w.Sub(t0).Microseconds())/1e3))
		time.Sleep(2 * time.Millisecond)
	}
	sort.Float64s(replay)
	sort.Float64s(watch)
	return replay, watch, ns.logs[1].Stats().CacheMisses, nil
}
