package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/testutil"
)

// killModel is what the clients of TestProcessKill9WhileCheckpointing sent
// and what the server acknowledged, across crashes. Each writer has at most
// one pipeline whose outcome is unknown (the one in flight at the kill);
// the restart that follows decides it, and the model adopts what it shows.
type killModel struct {
	mu     sync.Mutex
	unique map[string]string // acknowledged (or found after a crash) u:* keys
	sent   map[string]string // every u:* key ever sent, with its value
	gone   map[string]bool   // u:* keys sent, unacknowledged and not found after a crash
	hot    map[string]int    // hot:* key -> the iteration of its last write
	ctr    map[string]int    // counter -> increments known to have committed
	flight map[int]killIter  // writer -> its unacknowledged pipeline
}

// killIter is one writer's pipeline: SET u:W:I, SET hot:W:(I%16) W:I, INCR ctr:W.
type killIter struct {
	w, i int
}

func (it killIter) uniqueKey() string { return fmt.Sprintf("u:%d:%d", it.w, it.i) }
func (it killIter) value() string {
	return fmt.Sprintf("v%d-%d-%s", it.w, it.i, strings.Repeat("x", it.i%50))
}
func (it killIter) hotKey() string   { return fmt.Sprintf("hot:%d:%d", it.w, it.i%16) }
func (it killIter) hotValue() string { return fmt.Sprintf("%d:%d", it.w, it.i) }
func (it killIter) ctrKey() string   { return fmt.Sprintf("ctr:%d", it.w) }

// infoInt reads a numeric field of an INFO reply.
func infoInt(info, name string) (int64, bool) {
	m := regexp.MustCompile(`(?m)^` + name + `:(-?\d+)\r?$`).FindStringSubmatch(info)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	return n, err == nil
}

// dumpKeys returns every key and value of the server at addr, sorted.
func dumpKeys(ctx context.Context, t *testing.T, addr string) []string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	defer c.Close()
	var keys []string
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for i := 0; i < len(keys); i += 500 {
		batch := keys[i:min(i+500, len(keys))]
		vals, err := c.MGet(ctx, batch...).Result()
		if err != nil {
			t.Fatalf("mget: %v", err)
		}
		for j, k := range batch {
			out = append(out, fmt.Sprintf("%s=%v", k, vals[j]))
		}
	}
	return out
}

// TestProcessKill9WhileCheckpointing runs the real binary on the embedded
// seglog log with small automatic-checkpoint thresholds and 64 KiB segments
// (so trims delete segment files), writes through Redis clients while
// checkpoints run (automatic ones and BGREWRITEAOF), and kills it with
// SIGKILL at a checkpoint phase seen in INFO: while an image is being
// written (checkpoint_in_progress:1), right after one got authority (the
// checkpoint count rose), right after a trim (log_trimmed_below rose), and
// at a random moment (up to 300 ms after 100 acknowledged writes). After
// each kill a copy of the data directory and the directory itself are
// restarted: both hold the same keys and values (recovery is
// deterministic), every acknowledged write is there, and every key and
// value found was sent by a client (no ghost state); the pipeline in flight
// at the kill may have committed or not, and later restarts must agree
// with the first one on it.
func TestProcessKill9WhileCheckpointing(t *testing.T) {
	t.Parallel() // waits on child processes most of the time
	bin := buildCruzd(t)
	dir := t.TempDir()
	ctx := ctxT(t)
	flags := []string{"--checkpoint-min-log-bytes", "16KiB", "--checkpoint-log-ratio", "0.25", "--seglog-segment-size", "64KiB"}
	m := &killModel{unique: map[string]string{}, sent: map[string]string{}, gone: map[string]bool{},
		hot: map[string]int{}, ctr: map[string]int{}, flight: map[int]killIter{}}
	base := map[string]string{}

	// verify checks the server at addr against the model and settles the
	// pipelines that were in flight at the last kill.
	verify := func(addr string) {
		t.Helper()
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
		defer c.Close()
		m.mu.Lock()
		defer m.mu.Unlock()
		for k, v := range base {
			if got, err := c.Get(ctx, k).Result(); err != nil || got != v {
				t.Fatalf("acknowledged %s (%d bytes): after restart %d bytes, %v", k, len(v), len(got), err)
			}
		}
		for k, v := range m.unique {
			if got, err := c.Get(ctx, k).Result(); err != nil || got != v {
				t.Fatalf("acknowledged %s=%s: after restart %q, %v", k, v, got, err)
			}
		}
		for w, it := range m.flight {
			got, err := c.Get(ctx, it.uniqueKey()).Result()
			switch {
			case errors.Is(err, redis.Nil):
				m.gone[it.uniqueKey()] = true
			case err != nil || got != it.value():
				t.Fatalf("in-flight %s=%s: after restart %q, %v", it.uniqueKey(), it.value(), got, err)
			default:
				m.unique[it.uniqueKey()] = got
			}
			delete(m.flight, w)
			// The in-flight hot write and increment may have committed
			// (or not), independently of the unique key: all three are
			// checked against the range below and adopted.
			if got, err := c.Get(ctx, it.hotKey()).Result(); err == nil && got == it.hotValue() {
				m.hot[it.hotKey()] = it.i
			}
			if n, err := c.Get(ctx, it.ctrKey()).Int(); err == nil && (n == m.ctr[it.ctrKey()]+1) {
				m.ctr[it.ctrKey()] = n
			}
		}
		for k, i := range m.hot {
			want := fmt.Sprintf("%s:%d", strings.Split(k, ":")[1], i)
			if got, err := c.Get(ctx, k).Result(); err != nil || got != want {
				t.Fatalf("%s: last known write %q, after restart %q, %v", k, want, got, err)
			}
		}
		for k, n := range m.ctr {
			if got, err := c.Get(ctx, k).Int(); err != nil || got != n {
				t.Fatalf("counter %s: %d increments known, after restart %d, %v", k, n, got, err)
			}
		}
		// No ghost: every u:* key there was sent with that value and is
		// not one an earlier restart found missing.
		iter := c.Scan(ctx, 0, "u:*", 1000).Iterator()
		n := 0
		for iter.Next(ctx) {
			k := iter.Val()
			n++
			if _, ok := m.sent[k]; !ok || m.gone[k] {
				t.Fatalf("after restart %s exists: sent %v, missing after an earlier crash %v", k, ok, m.gone[k])
			}
			if _, ok := m.unique[k]; !ok {
				t.Fatalf("after restart %s exists but was neither acknowledged nor in flight", k)
			}
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		if n != len(m.unique) {
			t.Fatalf("after restart %d u:* keys, the model has %d", n, len(m.unique))
		}
	}

	// write runs 4 writers against addr until the server goes away, and
	// a goroutine that asks for a checkpoint every 200 ms until a writer
	// saw the server go; it returns once the writers have 100 acknowledged
	// pipelines between them. Their clients dial once, without retries: a
	// dead server is not waited for.
	next := map[int]int{} // writer -> next iteration
	write := func(addr string) (wait func()) {
		var wg sync.WaitGroup
		dead := make(chan struct{})
		var deadOnce sync.Once
		for w := range 4 {
			wg.Add(1)
			start := next[w]
			go func() {
				defer wg.Done()
				defer deadOnce.Do(func() { close(dead) })
				c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, MaxRetries: -1, PoolSize: 1, DialerRetries: 1})
				defer c.Close()
				for i := start; ; i++ {
					it := killIter{w, i}
					m.mu.Lock()
					m.sent[it.uniqueKey()] = it.value()
					m.flight[w] = it
					m.mu.Unlock()
					p := c.Pipeline()
					set := p.Set(ctx, it.uniqueKey(), it.value(), 0)
					hot := p.Set(ctx, it.hotKey(), it.hotValue(), 0)
					inc := p.Incr(ctx, it.ctrKey())
					p.Exec(ctx)
					if set.Err() != nil || hot.Err() != nil || inc.Err() != nil {
						return // the server died: the iteration stays in flight
					}
					m.mu.Lock()
					delete(m.flight, w)
					m.unique[it.uniqueKey()] = it.value()
					m.hot[it.hotKey()] = i
					m.ctr[it.ctrKey()]++
					m.mu.Unlock()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, MaxRetries: -1, PoolSize: 1, DialerRetries: 1})
			defer c.Close()
			tick := time.NewTicker(200 * time.Millisecond) // paces checkpoints (load shaping); nothing waits on it
			defer tick.Stop()
			for c.Do(ctx, "BGREWRITEAOF").Err() == nil {
				select {
				case <-dead:
					return
				case <-tick.C:
				}
			}
		}()
		m.mu.Lock()
		acked0 := len(m.unique)
		m.mu.Unlock()
		waitUntil(t, "100 acknowledged writes", func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return len(m.unique) >= acked0+100
		})
		return func() {
			wg.Wait()
			m.mu.Lock()
			for w := range 4 {
				if it, ok := m.flight[w]; ok {
					next[w] = it.i + 1
				} else {
					t.Fatalf("writer %d stopped with nothing in flight", w)
				}
			}
			m.mu.Unlock()
		}
	}

	// killAt polls INFO until the phase shows, then kills the process.
	killAt := func(p *proc, phase string) string {
		c := redis.NewClient(&redis.Options{Addr: p.addr, Protocol: 2})
		defer c.Close()
		read := func() (inProgress, count, trimmed int64) {
			info, err := c.Info(ctx, "checkpoint").Result()
			if err != nil {
				t.Fatalf("INFO: %v\n%s", err, p.stderr.String())
			}
			inProgress, _ = infoInt(info, "checkpoint_in_progress")
			count, _ = infoInt(info, "checkpoints")
			trimmed, _ = infoInt(info, "log_trimmed_below")
			return
		}
		_, count0, trimmed0 := read()
		// "any" kills at a random moment: the moment is the subject.
		anyAt := time.Now().Add(time.Duration(rand.IntN(300)) * time.Millisecond)
		var in, count, trimmed int64
		if !testutil.Poll(60*time.Second, func() bool {
			in, count, trimmed = read()
			switch phase {
			case "preparing":
				return in == 1 && count > count0
			case "confirmed":
				return count > count0+1
			case "trimmed":
				return trimmed > trimmed0 && count > count0+1
			}
			return time.Now().After(anyAt)
		}) {
			t.Fatalf("phase %s not seen in 60 s (checkpoints %d, trimmed below %d)\n%s", phase, count, trimmed, p.stderr.String())
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s (in progress %d, checkpoints %d, trimmed below %d)", phase, in, count, trimmed)
	}

	// A base of 2,000 keys of 200 bytes makes images big enough that
	// writing one takes a while.
	p := startProc(t, bin, dir, flags...)
	c := redis.NewClient(&redis.Options{Addr: p.addr, Protocol: 2})
	for b := 0; b < 2000; b += 500 {
		var kv []any
		for i := b; i < b+500; i++ {
			k, v := fmt.Sprintf("base:%05d", i), fmt.Sprintf("%05d%s", i, strings.Repeat("b", 195))
			kv = append(kv, k, v)
			base[k] = v
		}
		if err := c.MSet(ctx, kv...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()

	phases := []string{"preparing", "confirmed", "trimmed", "any", "preparing", "trimmed"}
	for cycle, phase := range phases {
		wait := write(p.addr)
		seen := killAt(p, phase)
		var ee *exec.ExitError
		if err := p.wait(t); !errors.As(err, &ee) {
			t.Fatalf("cycle %d: SIGKILL: %v", cycle, err)
		}
		wait()

		// Recovery is deterministic: a copy of the directory restarts to
		// the same keys and values as the directory itself (the two
		// recover at the same time).
		clone := t.TempDir()
		if out, err := exec.Command("cp", "-a", dir+"/.", clone).CombinedOutput(); err != nil {
			t.Fatalf("copy the data dir: %v\n%s", err, out)
		}
		pc := spawnProc(t, bin, clone, flags...)
		p = spawnProc(t, bin, dir, flags...)
		pc.awaitListening(t)
		p.awaitListening(t)
		dumpClone := dumpKeys(ctx, t, pc.addr)
		pc.stop(t, syscall.SIGTERM)
		dump := dumpKeys(ctx, t, p.addr)
		if strings.Join(dump, "\n") != strings.Join(dumpClone, "\n") {
			t.Fatalf("cycle %d: two recoveries of one crash differ: %d and %d keys", cycle, len(dump), len(dumpClone))
		}
		verify(p.addr)
		m.mu.Lock()
		t.Logf("cycle %d: killed at %s; restarted with %d keys (%d acknowledged u:* keys)", cycle, seen, len(dump), len(m.unique))
		m.mu.Unlock()
	}
	p.stop(t, syscall.SIGTERM)
	// The log was trimmed: images were written and used.
	out, err := exec.Command(bin, "inspect", "--data-dir", dir, "--to", "3").CombinedOutput()
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "trimmed") {
		t.Fatalf("the log's start is not trimmed after 6 cycles of checkpoints:\n%s", out)
	}
}

// TestCheckpointFlags: the checkpoint flags reach cruzdb.Options and the
// seglog segment size, defaults are cruzdb's, and bad values are refused.
func TestCheckpointFlags(t *testing.T) {
	parse := func(args ...string) (config, error) {
		cfg := defaultConfig()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		serveFlags(fs, &cfg)
		err := fs.Parse(args)
		if err == nil {
			err = cfg.validate()
		}
		return cfg, err
	}
	cfg, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	d := cruzdb.DefaultOptions()
	if o := cfg.dbOptions(nil); o.CheckpointLogRatio != d.CheckpointLogRatio || o.CheckpointMinLogBytes != d.CheckpointMinLogBytes || o.CheckpointSerial || cfg.Checkpoint.SegmentSize != 0 {
		t.Fatalf("defaults: %+v", cfg.Checkpoint)
	}
	cfg, err = parse("--checkpoint-log-ratio", "-1", "--checkpoint-min-log-bytes", "16KiB", "--checkpoint-serial", "--seglog-segment-size", "1MiB")
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.dbOptions(nil); o.CheckpointLogRatio != -1 || o.CheckpointMinLogBytes != 16<<10 || !o.CheckpointSerial || cfg.Checkpoint.SegmentSize != 1<<20 {
		t.Fatalf("set: %+v", cfg.Checkpoint)
	}
	for _, bad := range [][]string{
		{"--checkpoint-log-ratio", "0"},
		{"--checkpoint-log-ratio", "NaN"},
		{"--checkpoint-min-log-bytes", "0"},
		{"--seglog-segment-size", "1KiB"},
		{"--seglog-segment-size", "2GiB"},
	} {
		if _, err := parse(bad...); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(bad[0], "--")) {
			t.Errorf("%v: %v, want an error naming the flag", bad, err)
		}
	}
	// A data directory opened with a segment size makes segments of it.
	dir := t.TempDir()
	l, err := openEmbeddedLog(dir, true, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		if _, err := l.Append(ctxT(t), make([]byte, 4<<10)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	files, err := filepath.Glob(filepath.Join(dir, cruzdb.SegLogDirName, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
	}
	if len(sizes) < 3 || slices.Max(sizes) > 64<<10+8<<10 {
		t.Fatalf("160 KiB appended with 64 KiB segments: segment files of %v bytes", sizes)
	}
}
