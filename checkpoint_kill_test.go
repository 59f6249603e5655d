package cruzdb

import (
	"bufio"
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

// TestKill9CheckpointChild is the child of TestKill9WhileCheckpointing: it
// commits from four goroutines while a fifth checkpoints without pause
// (and the automatic trigger fires often), printing one line per
// acknowledged commit, until it is killed.
func TestKill9CheckpointChild(t *testing.T) {
	dir := os.Getenv("CRUZDB_CKPT_KILL9_DIR")
	if dir == "" {
		t.Skip("child of TestKill9WhileCheckpointing only")
	}
	start, _ := strconv.Atoi(os.Getenv("CRUZDB_CKPT_KILL9_START"))
	db, err := Open(dir, &Options{CheckpointMinLogBytes: 32 << 10, CheckpointLogRatio: 1})
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(3)
	}
	go func() {
		for {
			db.Checkpoint(context.Background())
		}
	}()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := start + w; ; i += 4 {
				k, v := fmt.Sprintf("key%08d", i%3000), fmt.Sprintf("value-%d", i)
				if i%8 == 0 {
					v += strings.Repeat("x", 3000) // values left in intentions
				}
				err := db.Update(context.Background(), func(tx *Txn) error {
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

// TestKill9WhileCheckpointing kills a real process, on the default embedded
// log, while it checkpoints and trims without pause, and checks after each
// restart that the newest acknowledged value of every key is there and
// that the log was trimmed.
func TestKill9WhileCheckpointing(t *testing.T) {
	if os.Getenv("CRUZDB_CKPT_KILL9_DIR") != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	acked := map[string]string{} // the newest acknowledged value per key
	order := map[string]int{}
	next := 0
	for cycle := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9CheckpointChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CRUZDB_CKPT_KILL9_DIR="+dir, "CRUZDB_CKPT_KILL9_START="+strconv.Itoa(next))
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
			// Keys are rewritten: a later acknowledgement of a key wins
			// (values carry their sequence number).
			var seq int
			fmt.Sscanf(f[2], "value-%d", &seq)
			if s, ok := order[f[1]]; !ok || seq > s {
				acked[f[1]], order[f[1]] = f[2], seq
			}
			if n++; n == target {
				cmd.Process.Kill() // SIGKILL: no flush, no close
			}
		}
		cmd.Wait()
		if n < target {
			t.Fatalf("cycle %d: child stopped after %d acks", cycle, n)
		}
		next += 1_000_000
		db, err := Open(dir, &Options{CheckpointLogRatio: -1})
		if err != nil {
			t.Fatalf("cycle %d: reopen: %v", cycle, err)
		}
		err = db.View(context.Background(), func(tx *Txn) error {
			for k, v := range acked {
				got, err := tx.Get([]byte(k))
				if err != nil {
					return fmt.Errorf("acknowledged %s lost after kill -9: %v", k, err)
				}
				// The same key may have been written again, acknowledged
				// or not, by a later commit of the killed child: never an
				// older value than the newest acknowledged.
				var gs, ws int
				fmt.Sscanf(string(got), "value-%d", &gs)
				fmt.Sscanf(v, "value-%d", &ws)
				if gs < ws {
					return fmt.Errorf("%s = value-%d after kill -9, older than the acknowledged %s", k, gs, v)
				}
			}
			return nil
		})
		_, terr := db.Log().Read(context.Background(), 1)
		sp := db.SafePoint()
		if cerr := db.Close(); cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if !errors.Is(terr, log.ErrTrimmed) {
			t.Fatalf("cycle %d: position 1 was not trimmed (%v)", cycle, terr)
		}
		t.Logf("cycle %d: %d keys intact; restarted from %d (checkpoint %v, tail %d)", cycle, len(acked), sp.Intention, sp.Marker != nil, sp.Tail)
	}
}
