package cruzdb

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestKill9Child is the child process of TestKill9: it writes until killed
// and prints one line per acknowledged commit.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv("CRUZDB_KILL9_DIR")
	if dir == "" {
		t.Skip("child of TestKill9 only")
	}
	start, _ := strconv.Atoi(os.Getenv("CRUZDB_KILL9_START"))
	db, err := Open(dir, nil)
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := start + w; ; i += 4 {
				k, v := fmt.Sprintf("key%08d", i), fmt.Sprintf("value-%d", i)
				if i%8 == 0 {
					// Intentions and afterimages larger than half a bbolt
					// page: boltlog stores them in parts.
					v += strings.Repeat("x", 5000)
				}
				err := db.Update(context.Background(), func(tx *Txn) error {
					// A read-modify-write on a shared counter makes conflicts.
					c, _ := tx.Get([]byte("counter"))
					n, _ := strconv.Atoi(string(c))
					if err := tx.Put([]byte("counter"), []byte(strconv.Itoa(n+1))); err != nil {
						return err
					}
					return tx.Put([]byte(k), []byte(v))
				})
				if err != nil {
					continue
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s %s\n", k, v)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestKill9 kills a real process writing on the default embedded log
// (seglog), several times, and checks after each restart that every
// acknowledged commit is there.
func TestKill9(t *testing.T) { kill9(t, BackendSeglog) }

// TestKill9Boltlog is TestKill9 on boltlog: the directory starts with an
// empty log.db file, which makes Open choose boltlog.
func TestKill9Boltlog(t *testing.T) { kill9(t, BackendBoltlog) }

func kill9(t *testing.T, backend string) {
	if os.Getenv("CRUZDB_KILL9_DIR") != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	if backend == BackendBoltlog {
		if err := os.WriteFile(filepath.Join(dir, LogFileName), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	acked := map[string]string{}
	next := 0
	for cycle := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CRUZDB_KILL9_DIR="+dir, "CRUZDB_KILL9_START="+strconv.Itoa(next))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		target := 150 + 100*cycle
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				t.Fatalf("child said %q", sc.Text())
			}
			acked[f[1]] = f[2]
			if n++; n == target {
				cmd.Process.Kill() // SIGKILL: no flush, no close
			}
		}
		cmd.Wait()
		if n < target {
			t.Fatalf("cycle %d: child stopped after %d acks", cycle, n)
		}
		next += 100000
		db, err := Open(dir, nil)
		if err != nil {
			t.Fatalf("cycle %d: reopen: %v", cycle, err)
		}
		err = db.View(context.Background(), func(tx *Txn) error {
			for k, v := range acked {
				got, err := tx.Get([]byte(k))
				if err != nil || string(got) != v {
					return fmt.Errorf("acknowledged %s=%s lost after kill -9: %q %v", k, v, got, err)
				}
			}
			return nil
		})
		sp := db.SafePoint()
		if got, berr := EmbeddedLogBackend(dir); got != backend || berr != nil {
			t.Fatalf("cycle %d: the directory's backend is %q (%v), want %q", cycle, got, berr, backend)
		}
		if cerr := db.Close(); cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		t.Logf("cycle %d: %d acknowledged commits intact; restarted from safe point %d (tail %d)", cycle, len(acked), sp.Intention, sp.Tail)
	}
}
