package main

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestAdminHTTP(t *testing.T) {
	dir := t.TempDir()
	s := testServer(t, func(c *config) { c.DataDir = dir }) // the embedded log
	ctx := ctxT(t)
	c := client(t, s)
	for range 5 {
		if err := c.Incr(ctx, "n").Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.Get(ctx, "n")
	base := "http://" + s.AdminAddr().String()

	code, body := httpGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"cruzdb_commits_total 5",
		"cruzdb_aborts_total 0",
		"cruzdb_conflicts_total 0",
		`cruzdb_commands_total{cmd="incr"} 5`,
		`cruzdb_commands_total{cmd="get"} 1`,
		`cruzdb_command_duration_seconds_bucket{cmd="incr",le=`,
		"cruzdb_commit_duration_seconds_count 5",
		`cruzdb_log_append_duration_seconds_count{type="intention"} 5`,
		"cruzdb_flush_duration_seconds_count",
		"cruzdb_unflushed_bytes",
		"cruzdb_cached_bytes",
		"cruzdb_backpressure_waits_total 0",
		"cruzdb_node_loads_total 0",
		"cruzdb_node_load_hits_total 0",
		"cruzdb_node_evictions_total 0",
		"cruzdb_log_tail",
		"cruzdb_processor_position",
		"cruzdb_connected_clients",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
	// One client committing one command at a time: afterimages ride in the
	// group commits of the next intentions (the log wrapper that times
	// appends keeps the embedded log's batch appends). Whether one does
	// depends on the flush finishing inside the piggyback window, so commit
	// until one has, with a deadline as a guard against a hang only.
	metric := func(body, name string) int64 {
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(body)
		if m == nil {
			return -1
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	for deadline := time.Now().Add(time.Minute); ; {
		_, body := httpGet(t, base+"/metrics")
		if metric(body, "cruzdb_afterimages_piggybacked_total") > 0 && metric(body, "cruzdb_afterimage_bytes_total") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics: no afterimage piggybacked after a minute of single commits:\n%s", body)
		}
		if err := c.Incr(ctx, "m").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/: %d", code)
	}
	if code, _ := httpGet(t, base+"/debug/pprof/goroutine?debug=1"); code != 200 {
		t.Fatalf("/debug/pprof/goroutine: %d", code)
	}
	if code, _ := httpGet(t, base+"/nosuch"); code != 404 {
		t.Fatalf("/nosuch: %d", code)
	}
}

// parseServeConfig parses args as cruzd serve's flags, with env as the
// CRUZD_* environment, and validates the result.
func parseServeConfig(env map[string]string, args ...string) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	serveFlags(fs, &cfg)
	if err := applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		return cfg, err
	}
	err := fs.Parse(args)
	if err == nil {
		err = cfg.validate()
	}
	return cfg, err
}

func TestConfigFlagsAndEnv(t *testing.T) {
	parse := parseServeConfig
	cfg, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "./cruzd-data" || cfg.ListenAddr != "127.0.0.1:7379" || cfg.AdminAddr != "127.0.0.1:7380" || cfg.MaxBulkLen != 64<<20 {
		t.Fatalf("defaults: %+v", cfg)
	}
	env := map[string]string{
		"CRUZD_DATA_DIR":             "/env/dir",
		"CRUZD_LISTEN_ADDR":          "127.0.0.1:1",
		"CRUZD_MAX_BULK_LEN":         "1MiB",
		"CRUZD_CACHE_BYTES":          "512KiB",
		"CRUZD_FLUSH_SERIAL":         "true",
		"CRUZD_IDLE_TIMEOUT":         "5m",
		"CRUZD_MAX_CONFLICT_RETRIES": "3",
		"CRUZD_NO_SYNC":              "1",
	}
	cfg, err = parse(env, "--listen-addr", "127.0.0.1:2", "--max-clients=7")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/env/dir" || cfg.ListenAddr != "127.0.0.1:2" || cfg.MaxBulkLen != 1<<20 || cfg.CacheBytes != 512<<10 ||
		!cfg.FlushSerial || cfg.IdleTimeout != 5*time.Minute || cfg.MaxConflictRetries != 3 || !cfg.NoSync || cfg.MaxClients != 7 {
		t.Fatalf("env and flags: %+v", cfg)
	}
	if _, err := parse(map[string]string{"CRUZD_MAX_ARGS": "many"}); err == nil || !strings.Contains(err.Error(), "CRUZD_MAX_ARGS") {
		t.Fatalf("bad env value: %v", err)
	}
	if _, err := parse(nil, "--max-bulk-len", "0"); err == nil {
		t.Fatal("--max-bulk-len 0 accepted")
	}
	if _, err := parse(nil, "--log-level", "loud"); err == nil {
		t.Fatal("--log-level loud accepted")
	}

	// --help documents every flag with its environment variable.
	var out bytes.Buffer
	if code := run([]string{"serve", "--help"}, &out, &out); code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, f := range []string{"data-dir", "listen-addr", "admin-addr", "cache-bytes", "flush-workers", "flush-serial", "apply-after-sync", "max-unflushed-bytes", "max-conflict-retries", "no-sync", "max-bulk-len", "max-args", "max-clients", "idle-timeout"} {
		if !strings.Contains(out.String(), "--"+f) || !strings.Contains(out.String(), envName(f)) {
			t.Errorf("--help lacks --%s or %s", f, envName(f))
		}
	}
	out.Reset()
	if code := run([]string{"nosuch"}, &out, &out); code != 2 {
		t.Fatalf("unknown subcommand exited %d", code)
	}
	if code := run([]string{"serve", "--data-dir", filepath.Join(t.TempDir(), "x"), "--max-args", "0"}, &out, &out); code != 2 {
		t.Fatalf("invalid flag value exited %d", code)
	}
	for _, tc := range []struct {
		in   string
		want int64
	}{{"1024", 1024}, {"64MiB", 64 << 20}, {"1gib", 1 << 30}, {"10kB", 10000}, {"2m", 2 << 20}} {
		if got, err := parseBytes(tc.in); err != nil || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v", tc.in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1.5MiB", "99999999999TiB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
}

// With a cache far smaller than the data, the node metrics move: nodes are
// evicted, and reading every key back loads some from the log (INFO agrees).
func TestNodeCacheMetrics(t *testing.T) {
	s := testServer(t, func(c *config) { c.CacheBytes = 64 << 10 })
	ctx := ctxT(t)
	c := client(t, s)
	val := strings.Repeat("v", 100)
	const keys = 4000
	for b := 0; b < keys; b += 100 {
		args := make([]any, 0, 200)
		for i := b; i < b+100; i++ {
			args = append(args, "k"+strconv.Itoa(i), val)
		}
		if err := c.MSet(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range keys {
		if v, err := c.Get(ctx, "k"+strconv.Itoa(i)).Result(); err != nil || v != val {
			t.Fatalf("GET k%d = %q, %v", i, v, err)
		}
	}
	_, body := httpGet(t, "http://"+s.AdminAddr().String()+"/metrics")
	metric := func(name string) int {
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics lacks %s", name)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	ev, loads := metric("cruzdb_node_evictions_total"), metric("cruzdb_node_loads_total")
	if ev == 0 || loads == 0 {
		t.Fatalf("with a 64 KiB cache and %d keys: %d evictions, %d node loads; want both above 0", keys, ev, loads)
	}
	info, err := c.Info(ctx, "cruzdb").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`node_loads:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("INFO lacks node_loads:\n%s", info)
	}
	if n, _ := strconv.Atoi(m[1]); n < loads {
		t.Fatalf("INFO node_loads %d below the /metrics figure %d read before it", n, loads)
	}
}
