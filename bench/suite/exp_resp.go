package suite

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runResp: redis-benchmark against cruzd and, in the same run, against
// redis-server with appendfsync always (both durable), as issue 6 asks:
// `redis-benchmark -t set,get -n N -c 50 -P 16 -r 100000 -d 100`, and the
// same without pipelining. This is a Go rendering of what bench/resp.sh (the
// cruzd issue's script) does, so that the suite needs no shell and reports
// like every other experiment; unlike the script it installs nothing (a
// missing redis-benchmark or redis-server is reported in the table).
func runResp(e *Env) error {
	n := pick(e, 200_000, 20_000, 2_000)
	pipelines := pick(e, []int{16, 1}, []int{16, 1}, []int{16})
	t := &Table{
		Name:    "resp",
		Title:   fmt.Sprintf("resp: redis-benchmark -t set,get -n %d -c 50 -r 100000 -d 100 (%s, %d run(s))", n, e.mode(), e.Runs),
		Columns: []string{"server", "pipeline", "SET/s", "GET/s", "cruzd ÷ redis-server"},
	}
	rb, rbErr := exec.LookPath("redis-benchmark")
	rs, rsErr := exec.LookPath("redis-server")

	cruzd, cruzdWhy, cleanBin := e.cruzdBinary()
	defer cleanBin()
	type server struct {
		name  string
		why   string // why it cannot run, if it cannot
		start func(dir string, port int) (*exec.Cmd, error)
	}
	servers := []server{
		{name: "cruzd", why: cruzdWhy, start: func(dir string, port int) (*exec.Cmd, error) {
			admin, err := freePort()
			if err != nil {
				return nil, err
			}
			return startCmd(cruzd, "serve", "--data-dir", filepath.Join(dir, "data"),
				"--listen-addr", fmt.Sprintf("127.0.0.1:%d", port), "--admin-addr", fmt.Sprintf("127.0.0.1:%d", admin))
		}},
		{name: "redis-server (appendfsync always)", start: func(dir string, port int) (*exec.Cmd, error) {
			return startCmd(rs, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no")
		}},
	}
	if rsErr != nil {
		servers[1].why = "redis-server not installed (apt-get install redis-server)"
	}
	if rbErr != nil {
		for i := range servers {
			servers[i].why = "redis-benchmark not installed (apt-get install redis-tools)"
		}
	}
	type key struct {
		server string
		p      int
		test   string
	}
	got := map[key]Sample{}
	steps := e.steps(len(servers) * len(pipelines))
	for _, s := range servers {
		for _, p := range pipelines {
			if s.why != "" {
				t.Add(s.name, p, s.why, s.why, nil)
				continue
			}
			steps.Step("%s, -P %d", s.name, p)
			res, err := e.repeatN(2, func() ([]float64, error) {
				r, err := e.respOne(rb, s.start, n, p)
				return []float64{r["SET"], r["GET"]}, err
			})
			if err != nil {
				t.Add(s.name, p, "failed: "+firstLine(err.Error()), nil, nil)
				continue
			}
			got[key{s.name, p, "SET"}], got[key{s.name, p, "GET"}] = res[0], res[1]
			t.Add(s.name, p, res[0], res[1], nil)
		}
	}
	// Ratios against redis-server.
	for i, r := range t.Rows {
		if r[0] != "cruzd" {
			continue
		}
		p := r[1].(int)
		c1, ok1 := got[key{"cruzd", p, "SET"}]
		c2, ok2 := got[key{"cruzd", p, "GET"}]
		r1, ok3 := got[key{servers[1].name, p, "SET"}]
		r2, ok4 := got[key{servers[1].name, p, "GET"}]
		switch {
		case ok1 && ok2 && ok3 && ok4 && p == 16:
			t.Rows[i][4] = fmt.Sprintf("SET %.2fx (target ≥ 1.0x: %s), GET %.2fx (target ≥ 0.5x: %s)",
				c1.Median()/r1.Median(), metStr(c1.Median() >= r1.Median()),
				c2.Median()/r2.Median(), metStr(c2.Median() >= 0.5*r2.Median()))
		case ok1 && ok2 && ok3 && ok4:
			t.Rows[i][4] = fmt.Sprintf("SET %.2fx, GET %.2fx (no target without pipelining)",
				c1.Median()/r1.Median(), c2.Median()/r2.Median())
		}
	}
	if cruzdWhy != "" {
		t.Title += " — cruzd not built yet"
		t.Note("**cruzd not built yet**: %s. The cruzd issue (6) brings cmd/cruzd; this experiment then builds it and runs it with --data-dir, --listen-addr and --admin-addr.", cruzdWhy)
	}
	t.Note("50 clients, random keys among 100,000, 100 B values; both servers durable (cruzd: embedded log with fsync; redis-server: AOF with appendfsync always)")
	if err := e.Emit(t); err != nil {
		return err
	}
	var groups []string
	for _, p := range pipelines {
		groups = append(groups, fmt.Sprintf("SET -P %d", p), fmt.Sprintf("GET -P %d", p))
	}
	var series []BarSeries
	for _, s := range servers {
		var v []float64
		for _, p := range pipelines {
			v = append(v, got[key{s.name, p, "SET"}].Median(), got[key{s.name, p, "GET"}].Median())
		}
		series = append(series, BarSeries{Name: s.name, Values: v})
	}
	title := "redis-benchmark, 50 clients"
	if cruzdWhy != "" {
		title += " (cruzd not built yet)"
	}
	return e.BarPlot("resp", title, "requests/s", groups, series)
}

// cruzdBinary returns the cruzd to run, building it from the main module if
// none was given, or why there is none.
func (e *Env) cruzdBinary() (bin, why string, cleanup func()) {
	cleanup = func() {}
	if e.CruzdBin != "" {
		return e.CruzdBin, "", cleanup
	}
	src := filepath.Join(e.MainDir, "cmd", "cruzd")
	if _, err := os.Stat(src); err != nil {
		return "", "cmd/cruzd does not exist in the main module", cleanup
	}
	dir, cleanup, err := e.tempDir("cruzd-bin")
	if err != nil {
		return "", err.Error(), func() {}
	}
	bin = filepath.Join(dir, "cruzd")
	e.progressf("building cruzd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cruzd")
	cmd.Dir = e.MainDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Sprintf("go build ./cmd/cruzd failed: %s", firstLine(stderr.String()+err.Error())), cleanup
	}
	return bin, "", cleanup
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startCmd(name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// respOne starts a server in a fresh directory, waits for its port, runs
// redis-benchmark and stops the server; it returns requests/s by test.
func (e *Env) respOne(rb string, start func(dir string, port int) (*exec.Cmd, error), n, pipeline int) (map[string]float64, error) {
	dir, cleanup, err := e.tempDir("resp")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd, err := start(dir, port)
	if err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("server exited before listening: %v: %s", err, cmd.Stdout.(*bytes.Buffer).String())
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("server did not listen on %s within 30s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bench := exec.CommandContext(ctx, rb, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-t", "set,get", "-n", strconv.Itoa(n), "-c", "50", "-P", strconv.Itoa(pipeline),
		"-r", "100000", "-d", "100", "--csv")
	var out, errOut bytes.Buffer
	bench.Stdout, bench.Stderr = &out, &errOut
	if err := bench.Run(); err != nil {
		return nil, fmt.Errorf("redis-benchmark: %v: %s", err, firstLine(errOut.String()))
	}
	return parseBenchCSV(out.Bytes())
}

// parseBenchCSV reads redis-benchmark --csv output: a header line (newer
// versions) and one line per test, the test name then requests/s.
func parseBenchCSV(b []byte) (map[string]float64, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark output: %w", err)
	}
	res := map[string]float64{}
	for _, rec := range recs {
		if len(rec) < 2 {
			continue
		}
		name := strings.ToUpper(strings.TrimSpace(rec[0]))
		name, _, _ = strings.Cut(name, " ")
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		if err != nil {
			continue // the header
		}
		res[name] = v
	}
	if _, ok := res["SET"]; !ok {
		return nil, errors.New("redis-benchmark output has no SET line: " + firstLine(string(b)))
	}
	if _, ok := res["GET"]; !ok {
		return nil, errors.New("redis-benchmark output has no GET line: " + firstLine(string(b)))
	}
	return res, nil
}
