package etcdlog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func pattern(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func chunkCount(t *testing.T, cli *clientv3.Client, l *Log) int64 {
	t.Helper()
	resp, err := cli.Get(t.Context(), l.k.prefix+"c/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// TestLargeEntries writes entries of 3 and 15 MiB among small ones from two
// Logs, reads them whole and in ranges from both, and checks that trimming
// them deletes their chunks.
func TestLargeEntries(t *testing.T) {
	t.Parallel() // logs of its own names
	cli := newClient(t, sharedEtcd(t))
	name := uniqueName(t)
	a, b := mustOpen(t, cli, name, nil), mustOpen(t, cli, name, nil)
	ctx := t.Context()
	small := []byte("small")
	big3, big15 := pattern(3<<20, 3), pattern(15<<20, 15)
	want := [][]byte{small, big3, small, big15, small}
	for i, d := range want {
		w := a
		if i%2 == 1 {
			w = b
		}
		p, err := w.Append(ctx, d)
		if err != nil {
			t.Fatalf("Append(%d bytes): %v", len(d), err)
		}
		if p != log.Position(i) {
			t.Fatalf("Append(%d bytes) = %d, want %d", len(d), p, i)
		}
	}
	for ri, r := range []*Log{a, b} {
		for i, d := range want {
			if len(d) > 1<<20 && i%2 == ri {
				continue // the reader of the other's large entries
			}
			got, err := r.Read(ctx, log.Position(i))
			if err != nil || !bytes.Equal(got, d) {
				t.Fatalf("Read(%d) = %d bytes, %v; want %d bytes", i, len(got), err, len(d))
			}
		}
		// A range across a chunk boundary, reading two chunks of fifteen.
		off := 5<<20 - 10
		got, size, err := r.ReadRange(ctx, 3, off, 20)
		if err != nil || size != len(big15) || !bytes.Equal(got, big15[off:off+20]) {
			t.Fatalf("ReadRange(3, %d, 20) = %d bytes, size %d, %v", off, len(got), size, err)
		}
	}
	if n := chunkCount(t, cli, a); n != 3+15 {
		t.Fatalf("%d chunks stored, want 18", n)
	}
	if err := a.Trim(ctx, 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the chunks of the trimmed entry to be deleted", 30*time.Second, func() bool {
		return chunkCount(t, cli, a) == 15
	})
	if _, err := b.Read(ctx, 1); !errors.Is(err, log.ErrTrimmed) {
		t.Fatalf("Read(1) after Trim(2) = %v, want ErrTrimmed", err)
	}
	if got, _, err := b.ReadRange(ctx, 3, len(big15)-100, 200); err != nil || !bytes.Equal(got, big15[len(big15)-100:]) {
		t.Fatalf("ReadRange(3) after Trim(2) = %d bytes, %v", len(got), err)
	}
}

// The killed-writer test runs a child process (this test binary) that
// writes a large entry's chunks and stops before its entry, and kills it
// there with SIGKILL.
const childEnv = "ETCDLOG_TEST_CHILD"

// The child keeps its chunks' lease alive from the moment they are written
// until it is killed, so the lease needs to outlast only the writing of
// the chunks (a 2 s lease without the keep-alive once expired before the
// parent's count); the collection check below waits for it to expire.
func childMain() int {
	url, name := os.Getenv(childEnv), os.Getenv(childEnv+"_NAME")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	l, err := Open(context.Background(), cli, name, &Options{ChunkLeaseTTL: 5 * time.Second})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	l.afterChunks = func(lease clientv3.LeaseID) error {
		// Keep the lease alive while this process lives, so that the
		// parent sees the chunks however loaded the machine is; once
		// killed, the lease expires.
		if _, err := cli.KeepAlive(context.Background(), lease); err != nil {
			fmt.Println("error: keepalive:", err)
			os.Exit(1)
		}
		fmt.Println("CHUNKS-WRITTEN")
		select {} // wait here to be killed
	}
	_, err = l.Append(context.Background(), pattern(3<<20, 9))
	fmt.Println("error: append returned", err)
	return 1
}

func TestWriterKilledBetweenChunksAndEntry(t *testing.T) {
	t.Parallel() // waits for a lease to expire most of the time
	url := sharedEtcd(t)
	cli := newClient(t, url)
	name := uniqueName(t)
	l := mustOpen(t, cli, name, nil)
	ctx := t.Context()
	if _, err := l.Append(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+url, childEnv+"_NAME="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "CHUNKS-WRITTEN" {
		t.Fatalf("child said %q, %v", line, err)
	}
	if n := chunkCount(t, cli, l); n != 3 {
		t.Fatalf("%d chunks written by the child, want 3", n)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// Nothing names them: the log still ends after "before".
	if tail, err := l.Tail(ctx); err != nil || tail != 1 {
		t.Fatalf("Tail = %d, %v; want 1", tail, err)
	}
	if _, err := l.Read(ctx, 1); !errors.Is(err, log.ErrNotWritten) {
		t.Fatalf("Read(1) = %v, want ErrNotWritten", err)
	}
	// The chunks' lease expires and etcd collects them.
	waitFor(t, "the orphaned chunks to be collected", 30*time.Second, func() bool {
		return chunkCount(t, cli, l) == 0
	})
	if p, err := l.Append(ctx, []byte("after")); err != nil || p != 1 {
		t.Fatalf("Append after the dead writer = %d, %v; want 1", p, err)
	}
}

// TestChunksExpireBeforeEntry: a writer slower than ChunkLeaseTTL between
// its chunks and its entry finds its chunks gone; the entry's transaction
// fails whole (nothing names missing chunks) and the writer starts over.
// The lease ends by revocation, which deletes the chunks as expiry does,
// at once: no TTL races the machine (TestWriterKilledBetweenChunksAndEntry
// waits out a real expiry).
func TestChunksExpireBeforeEntry(t *testing.T) {
	cli := newClient(t, sharedEtcd(t))
	l := mustOpen(t, cli, uniqueName(t), nil) // chunks live 60 s: the retry's never expire
	ctx := t.Context()
	stalls := 0
	l.afterChunks = func(lease clientv3.LeaseID) error {
		if stalls > 0 {
			return nil
		}
		stalls++
		if _, err := cli.Revoke(ctx, lease); err != nil {
			return err
		}
		if n := chunkCount(t, cli, l); n != 0 {
			return fmt.Errorf("%d chunks left after their lease was revoked", n)
		}
		return nil
	}
	data := pattern(2<<20+5, 4)
	p, err := l.Append(ctx, data)
	if err != nil || p != 0 {
		t.Fatalf("Append = %d, %v", p, err)
	}
	if stalls != 1 {
		t.Fatalf("stalled %d times", stalls)
	}
	got, err := l.Read(ctx, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Read(0) = %d bytes, %v", len(got), err)
	}
	if n := chunkCount(t, cli, l); n != 3 {
		t.Fatalf("%d chunks, want 3", n)
	}
}
