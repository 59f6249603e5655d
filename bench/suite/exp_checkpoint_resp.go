package suite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runCheckpointResp: issue 19's bound on cruzd's data directory. The real
// redis-benchmark runs `-t set -r 1000 -n N` five times in a row against one
// real cruzd (default flags: seglog with fsync, automatic checkpoints on),
// and after each round the data directory's size (du: allocated and
// apparent bytes) and INFO's checkpoint section are recorded. The target:
// after round 5 the directory is within 1.5x of its size after round 3, and
// within 16x the live data (1,000 keys of 16 bytes with 3-byte values).
// seglog preallocates each segment (64 MiB by default) and a trim frees
// whole segments, so the directory never goes below one segment; a second
// server with --seglog-segment-size 64KiB shows the bound the log itself
// keeps.
func runCheckpointResp(e *Env) error {
	n := pick(e, 300_000, 10_000, 2_000)
	const rounds = 5
	variants := pick(e, []string{"", "64KiB"}, []string{"64KiB"}, []string{"64KiB"})
	t := &Table{
		Name:  "checkpoint-resp",
		Title: fmt.Sprintf("checkpoint-resp: cruzd's data directory under redis-benchmark -t set -r 1000 -n %d, %d rounds (%s)", n, rounds, e.mode()),
		Columns: []string{"segment size", "round", "SET/s", "du bytes (allocated)", "apparent bytes", "segment files",
			"live log bytes", "checkpoints", "trimmed below", "keys", "target met"},
	}
	rb, rbErr := exec.LookPath("redis-benchmark")
	cruzd, cruzdWhy, cleanBin := e.cruzdBinary()
	defer cleanBin()
	if rbErr != nil {
		cruzdWhy = "redis-benchmark not installed (apt-get install redis-tools)"
	}
	steps := e.steps(len(variants) * rounds)
	var series []Series
	for _, seg := range variants {
		name := seg
		if name == "" {
			name = "64MiB (default)"
		}
		if cruzdWhy != "" {
			t.Add(name, "-", cruzdWhy, nil, nil, nil, nil, nil, nil, nil, "not run")
			continue
		}
		rows, err := e.checkpointRespOne(cruzd, rb, seg, n, rounds, func(r int) { steps.Step("segments %s, round %d", name, r) })
		if err != nil {
			t.Add(name, "-", "failed: "+firstLine(err.Error()), nil, nil, nil, nil, nil, nil, nil, "no")
			continue
		}
		live := rows[len(rows)-1].keys * (16 + 3)
		sr := Series{Name: "du, segments " + name}
		for i, r := range rows {
			sr.X = append(sr.X, float64(i+1))
			sr.Y = append(sr.Y, float64(r.du))
			verdict := ""
			if i == len(rows)-1 && len(rows) >= 3 {
				r3 := rows[2].du
				within3, within16 := float64(r.du) <= 1.5*float64(r3), r.du <= 16*live
				verdict = fmt.Sprintf("%.2fx round 3 (≤ 1.5x: %s), %.1fx live data (≤ 16x: %s)",
					float64(r.du)/float64(r3), metStr(within3), float64(r.du)/float64(live), metStr(within16))
			}
			t.Add(name, i+1, r.rate, r.du, r.apparent, r.segments, r.liveLog, r.checkpoints, r.trimmed, r.keys, verdict)
		}
		series = append(series, sr)
	}
	t.Note("one cruzd per segment size (default flags otherwise: seglog with fsync, automatic checkpoints on), %d rounds of redis-benchmark -t set -r 1000 -n %d -c 50 on it; after each round du of its data directory (allocated blocks, and apparent file sizes) and INFO checkpoint", rounds, n)
	t.Note("live data: keys × 19 bytes (16-byte redis-benchmark keys, 3-byte values) = the target's base; seglog preallocates every segment file to its full size")
	if err := e.Emit(t); err != nil {
		return err
	}
	return e.LinePlot("checkpoint-resp", "cruzd data directory after each redis-benchmark round", "round", "bytes (du)", false, true, series)
}

// respRound is the state after one redis-benchmark round.
type respRound struct {
	rate                       float64
	du, apparent               int64
	segments                   int
	liveLog, checkpoints, keys int64
	trimmed                    int64
}

// checkpointRespOne runs one cruzd with --seglog-segment-size seg (empty:
// the default) and the rounds against it.
func (e *Env) checkpointRespOne(cruzd, rb, seg string, n, rounds int, step func(int)) ([]respRound, error) {
	dir, cleanup, err := e.tempDir("checkpoint-resp")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	args := []string{"serve", "--data-dir", data, "--listen-addr", fmt.Sprintf("127.0.0.1:%d", port), "--admin-addr", fmt.Sprintf("127.0.0.1:%d", admin)}
	if seg != "" {
		args = append(args, "--seglog-segment-size", seg)
	}
	cmd, err := startCmd(cruzd, args...)
	if err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
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
			return nil, fmt.Errorf("cruzd exited before listening: %v: %s", err, cmd.Stdout.(*bytes.Buffer).String())
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cruzd did not listen on %s within 30s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var rows []respRound
	for round := 1; round <= rounds; round++ {
		step(round)
		bench := exec.Command(rb, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "set", "-r", "1000", "-n", strconv.Itoa(n), "--csv")
		var out, errOut bytes.Buffer
		bench.Stdout, bench.Stderr = &out, &errOut
		if err := bench.Run(); err != nil {
			return nil, fmt.Errorf("redis-benchmark: %v: %s", err, firstLine(errOut.String()))
		}
		rate, err := parseSetRate(out.Bytes())
		if err != nil {
			return nil, err
		}
		info, err := respCommand(addr, "INFO", "checkpoint")
		if err != nil {
			return nil, err
		}
		keys, err := respCommand(addr, "DBSIZE")
		if err != nil {
			return nil, err
		}
		r := respRound{rate: rate}
		r.keys, _ = strconv.ParseInt(keys, 10, 64)
		r.liveLog = infoInt(info, "log_live_bytes")
		r.checkpoints = infoInt(info, "checkpoints")
		r.trimmed = infoInt(info, "log_trimmed_below")
		r.du, r.apparent, r.segments = dirUsage(data)
		rows = append(rows, r)
	}
	return rows, nil
}

// parseSetRate reads the SET line of redis-benchmark --csv output.
func parseSetRate(b []byte) (float64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ",")
		if len(f) >= 2 && strings.Trim(f[0], `" `) == "SET" {
			return strconv.ParseFloat(strings.Trim(f[1], `" `), 64)
		}
	}
	return 0, errors.New("redis-benchmark output has no SET line: " + firstLine(string(b)))
}

func infoInt(info, name string) int64 {
	m := regexp.MustCompile(`(?m)^` + name + `:(-?\d+)\r?$`).FindStringSubmatch(info)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	return v
}

// respCommand sends one command over a new connection and returns its
// reply: a bulk or simple string, or an integer in decimal.
func respCommand(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("%s: %s", args[0], line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("%s: bad bulk reply %q", args[0], line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("%s: unexpected reply %q", args[0], line)
}

// dirUsage returns the allocated bytes (what du reports), the apparent
// bytes and the number of seglog segment files under dir.
func dirUsage(dir string) (allocated, apparent int64, segments int) {
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		apparent += fi.Size()
		allocated += allocatedBytes(fi)
		if strings.HasSuffix(p, ".seg") {
			segments++
		}
		return nil
	})
	return allocated, apparent, segments
}
