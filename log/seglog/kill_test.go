package seglog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

const kill9Env = "SEGLOG_KILL9_DIR"

// kill9Opts: segments of one preallocation step (they roll by size), or
// with SEGLOG_KILL9_STEPS set, 1 MiB segments that grow in steps and that
// trims retire before they fill; trimmed files of any size kept as spares.
func kill9Opts() *Options {
	if os.Getenv(kill9StepsEnv) != "" {
		return &Options{SegmentSize: 1 << 20, minSpare: 1}
	}
	return &Options{SegmentSize: minSegmentSize, minSpare: 1}
}

const kill9StepsEnv = "SEGLOG_KILL9_STEPS"

// killData is the entry named name: every 10th is larger than a segment's
// remaining space often is, so groups roll segments.
func killData(name string) []byte {
	b := []byte(name)
	if n, _ := strconv.Atoi(name[strings.LastIndexByte(name, '-')+1:]); n%10 == 3 {
		b = append(b, bytes.Repeat([]byte{byte(n)}, 20000)...)
	}
	return b
}

// TestKill9Child is the child process of TestKill9: it appends (alone and
// in batches), fills ahead of the tail and trims until it is killed, and
// prints one line per acknowledged call.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv(kill9Env)
	if dir == "" {
		t.Skip("child of TestKill9 only")
	}
	cycle := os.Getenv("SEGLOG_KILL9_CYCLE")
	l, err := Open(dir, kill9Opts())
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				name := fmt.Sprintf("c%s-w%d-%d", cycle, w, i)
				switch {
				case w == 3:
					names := []string{name + "-0", name + "-1", name + "-2"}
					ps, err := l.AppendBatch(ctx, [][]byte{killData(names[0]), killData(names[1]), killData(names[2])})
					if err != nil {
						say("error %v", err)
						return
					}
					for k, p := range ps {
						say("ack %d %s", p, names[k])
					}
					continue
				case w == 2 && i%30 == 29:
					tail, _ := l.Tail(ctx)
					// Other appenders may reach tail+3 first.
					switch err := l.Fill(ctx, tail+3); {
					case err == nil:
						say("fill %d", tail+3)
					case !errors.Is(err, log.ErrWritten):
						say("error %v", err)
						return
					}
				case w == 1 && i%40 == 39:
					tail, _ := l.Tail(ctx)
					if tail > 100 {
						// A trim in flight when the child dies may or may
						// not have happened: the parent learns its point.
						say("trimming %d", tail-100)
						if err := l.Trim(ctx, tail-100); err != nil {
							say("error %v", err)
							return
						}
						say("trim %d", tail-100)
						say("recycled %d", l.Stats().Recycled)
					}
				}
				p, err := l.Append(ctx, killData(name))
				if err != nil {
					say("error %v", err)
					return
				}
				say("ack %d %s", p, name)
			}
		}()
	}
	wg.Wait()
	os.Exit(4)
}

// TestKill9 kills a real process appending to seglog (with fdatasync, small
// segments that roll and are trimmed, and trimmed segment files reused as
// new segments), several times, and checks after each restart that every
// acknowledged entry, fill and trim is there and that appends carry on.
func TestKill9(t *testing.T) {
	if os.Getenv(kill9Env) != "" {
		t.Skip("in the child")
	}
	testKill9(t, false)
}

// TestKill9Steps is TestKill9 with segments that grow by preallocation
// steps and are retired by trims: kills land in step extensions and in
// rolls started by a trim.
func TestKill9Steps(t *testing.T) {
	if os.Getenv(kill9Env) != "" {
		t.Skip("in the child")
	}
	t.Setenv(kill9StepsEnv, "1")
	testKill9(t, true)
}

func testKill9(t *testing.T, steps bool) {
	ctx := context.Background()
	dir := t.TempDir()
	acked := map[log.Position]string{}
	filled := map[log.Position]bool{}
	var trim, trying log.Position // acknowledged trims, and attempted ones
	var recycled uint64           // segments a child started in a spare
	for cycle := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
		cmd.Env = append(os.Environ(), kill9Env+"="+dir, "SEGLOG_KILL9_CYCLE="+strconv.Itoa(cycle))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n, target := 0, 300+200*cycle
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				t.Fatalf("child said %q", sc.Text())
			}
			p, err := strconv.ParseUint(f[1], 10, 64)
			switch {
			case f[0] == "ack" && len(f) == 3 && err == nil:
				if prev, dup := acked[log.Position(p)]; dup {
					t.Fatalf("position %d acknowledged twice: %s and %s", p, prev, f[2])
				}
				acked[log.Position(p)] = f[2]
			case f[0] == "fill" && err == nil:
				filled[log.Position(p)] = true
			case f[0] == "trim" && err == nil:
				trim = max(trim, log.Position(p))
			case f[0] == "trimming" && err == nil:
				trying = max(trying, log.Position(p))
			case f[0] == "recycled" && err == nil:
				recycled = max(recycled, p)
			default:
				t.Fatalf("child said %q", sc.Text())
			}
			if n++; n == target {
				cmd.Process.Kill() // SIGKILL: no close, a group commit may be torn
			}
		}
		cmd.Wait()
		if n < target {
			t.Fatalf("cycle %d: child stopped after %d lines", cycle, n)
		}

		l, err := Open(dir, kill9Opts())
		if err != nil {
			t.Fatalf("cycle %d: reopen: %v", cycle, err)
		}
		for p, name := range acked {
			got, err := l.Read(ctx, p)
			switch {
			case p < trim:
				if !errors.Is(err, log.ErrTrimmed) {
					t.Fatalf("cycle %d: Read(%d) below the acknowledged trim %d = %v, want ErrTrimmed", cycle, p, trim, err)
				}
			case p < trying && errors.Is(err, log.ErrTrimmed):
				// Below a trim that was in flight at the kill.
			case err != nil || !bytes.Equal(got, killData(name)):
				t.Fatalf("cycle %d: acknowledged %s at %d lost after kill -9: %d bytes, %v", cycle, name, p, len(got), err)
			}
		}
		for p := range filled {
			if _, err := l.Read(ctx, p); !errors.Is(err, log.ErrFilled) && !errors.Is(err, log.ErrTrimmed) {
				t.Fatalf("cycle %d: acknowledged fill of %d lost after kill -9: %v", cycle, p, err)
			}
		}
		tail, err := l.Tail(ctx)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("reopened-%d", cycle)
		p, err := l.Append(ctx, killData(name))
		if err != nil || p < tail {
			t.Fatalf("cycle %d: Append after reopen = %d, %v (tail %d)", cycle, p, err, tail)
		}
		acked[p] = name
		if got, err := l.Read(ctx, p); err != nil || !bytes.Equal(got, killData(name)) {
			t.Fatalf("cycle %d: Read(%d) after reopen = %q, %v", cycle, p, got, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("cycle %d: %d acknowledged entries and %d fills intact, trim %d, tail %d, %d segments reused", cycle, len(acked), len(filled), trim, tail, recycled)
	}
	if recycled == 0 {
		t.Fatal("no child started a segment in a spare file: the kills never met a reused file")
	}
}
