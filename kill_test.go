package cruzdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The kill -9 harness: a child process (a test of this binary, run with
// CRUZDB_KILL9_DIR set) commits until it is killed and prints one line per
// acknowledged commit; the parent kills it, reopens the directory and
// checks what was acknowledged. TestKill9WhileCheckpointing
// (checkpoint_kill_test.go) uses it too.

// killChildWrites commits from four goroutines until the process is
// killed, printing "ack <key> <value>" per acknowledged commit. Writer w
// takes the numbers start+w, start+w+4, ...; key names number i's key, its
// value is "value-<i>", every eighth one padded with pad bytes. Each commit
// also increments a shared counter, so commits conflict. A reader prints
// "saw counter <n>" whenever a transaction it begins reads a higher
// counter: what a reader saw must survive the kill too. (A kill leaves what
// the log wrote in the page cache, so this catches a value shown before it
// was written, not one shown before its fdatasync ended: that is
// TestEarlyApplyShownOnlyOnceDurable's.)
func killChildWrites(db *DB, start int, key func(i int) string, pad int) {
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	go func() {
		last := -1
		for {
			var n int
			if err := db.View(context.Background(), func(tx *Txn) error {
				c, err := tx.Get([]byte("counter"))
				n, _ = strconv.Atoi(string(c))
				return err
			}); err != nil || n <= last {
				time.Sleep(50 * time.Microsecond) // leave the cores to the writers
				continue
			}
			last = n
			mu.Lock()
			fmt.Fprintf(out, "saw counter %d\n", n)
			out.Flush()
			mu.Unlock()
		}
	}()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := start + w; ; i += 4 {
				k, v := key(i), fmt.Sprintf("value-%d", i)
				if i%8 == 0 {
					v += strings.Repeat("x", pad)
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

// killChild returns the directory and first number the parent gave this
// child, or "" when the test runs as a parent.
func killChild() (dir string, start int) {
	start, _ = strconv.Atoi(os.Getenv("CRUZDB_KILL9_START"))
	return os.Getenv("CRUZDB_KILL9_DIR"), start
}

// valueSeq is the number a value of killChildWrites carries.
func valueSeq(v string) int {
	var n int
	fmt.Sscanf(v, "value-%d", &n)
	return n
}

// killCycles runs the child test named child on dir cycles times, each
// time killing it with SIGKILL (no flush, no close) after 100, 150, ...
// acknowledged commits; cycle c's child numbers its commits from
// c*stride. After each kill, check gets the newest acknowledged value of
// every key, and the least the shared counter must be after a restart:
// every acknowledged commit incremented it, and a reader saw it at that
// value (killCounterAtLeast checks it).
func killCycles(t *testing.T, child, dir string, cycles, stride int, check func(cycle int, acked map[string]string, counter int)) {
	t.Helper()
	if d, _ := killChild(); d != "" {
		t.Skip("in the child")
	}
	// The parent mostly waits for its child: run alongside the other
	// parallel tests.
	t.Parallel()
	acked := map[string]string{}
	acks, saw := 0, 0
	for cycle := range cycles {
		cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CRUZDB_KILL9_DIR="+dir, "CRUZDB_KILL9_START="+strconv.Itoa(cycle*stride))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		target := 100 + 50*cycle
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 3 && f[0] == "saw" && f[1] == "counter" {
				n, err := strconv.Atoi(f[2])
				if err != nil {
					t.Fatalf("child said %q", sc.Text())
				}
				saw = max(saw, n)
				continue
			}
			if len(f) != 3 || f[0] != "ack" {
				t.Fatalf("child said %q", sc.Text())
			}
			acks++
			// A key acknowledged again keeps its newest value.
			if old, ok := acked[f[1]]; !ok || valueSeq(f[2]) > valueSeq(old) {
				acked[f[1]] = f[2]
			}
			if n++; n == target {
				cmd.Process.Kill()
			}
		}
		cmd.Wait()
		if n < target {
			t.Fatalf("cycle %d: child stopped after %d acks", cycle, n)
		}
		check(cycle, acked, max(acks, saw))
	}
}

// killCounterAtLeast checks that the shared counter of killChildWrites is
// at least least.
func killCounterAtLeast(db *DB, least int) error {
	return db.View(context.Background(), func(tx *Txn) error {
		c, err := tx.Get([]byte("counter"))
		if err != nil {
			return fmt.Errorf("counter: %w", err)
		}
		if n, _ := strconv.Atoi(string(c)); n < least {
			return fmt.Errorf("counter %d after kill -9, below %d (acknowledged increments, or a value a reader saw)", n, least)
		}
		return nil
	})
}

// TestKill9Child is the child process of TestKill9: unique keys, values of
// every eighth commit larger than half a bbolt page (boltlog stores such
// intentions and afterimages in parts).
func TestKill9Child(t *testing.T) {
	dir, start := killChild()
	if dir == "" {
		t.Skip("child of TestKill9 only")
	}
	db, err := Open(dir, nil)
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(3)
	}
	killChildWrites(db, start, func(i int) string { return fmt.Sprintf("key%08d", i) }, 5000)
}

// TestKill9 kills a real process writing on the default embedded log
// (seglog), several times, and checks after each restart that every
// acknowledged commit is there.
func TestKill9(t *testing.T) { kill9(t, BackendSeglog) }

// TestKill9Boltlog is TestKill9 on boltlog: the directory starts with an
// empty log.db file, which makes Open choose boltlog.
func TestKill9Boltlog(t *testing.T) { kill9(t, BackendBoltlog) }

func kill9(t *testing.T, backend string) {
	dir := t.TempDir()
	if backend == BackendBoltlog {
		if err := os.WriteFile(filepath.Join(dir, LogFileName), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	killCycles(t, "TestKill9Child", dir, 4, 100000, func(cycle int, acked map[string]string, counter int) {
		db, err := Open(dir, nil)
		if err != nil {
			t.Fatalf("cycle %d: reopen: %v", cycle, err)
		}
		err = errors.Join(checkAcked(db, acked), killCounterAtLeast(db, counter))
		sp := db.SafePoint()
		if got, berr := EmbeddedLogBackend(dir); got != backend || berr != nil {
			t.Fatalf("cycle %d: the directory's backend is %q (%v), want %q", cycle, got, berr, backend)
		}
		if cerr := db.Close(); cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil {
			t.Fatalf("cycle %d: after kill -9: %v", cycle, err)
		}
		t.Logf("cycle %d: %d acknowledged commits intact; restarted from safe point %d (tail %d)", cycle, len(acked), sp.Intention, sp.Tail)
	})
}
