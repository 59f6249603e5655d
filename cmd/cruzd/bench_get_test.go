package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPipelinedGet is redis-benchmark's pipelined GET test in-process
// (-c 50 -P 16 -r 100000 -d 100) against the default durable configuration:
// 100K string keys of 100 bytes ("key:%012d", the names redis-benchmark
// uses), then 50 connections each sending 16 GETs of random keys in one
// write and reading the 16 replies before the next. An op is one GET. Like
// BenchmarkPipelinedSet it reports GETs/s, the CPU time of the whole process
// per GET (the client goroutines included) and the cores busy:
//
//	go test -run '^$' -bench PipelinedGet -cpuprofile cpu.out ./cmd/cruzd
func BenchmarkPipelinedGet(b *testing.B) {
	const keys, valueSize = 100_000, 100
	dir := b.TempDir()
	s := testServer(b, func(c *config) {
		c.DataDir = dir
		c.NoSync = false
	})
	value := bytes.Repeat([]byte("v"), valueSize)
	fillStrings(b, s, keys, value)
	benchPipelinedGet(b, s.Addr().String(), 50, 16, keys, value)
}

// fillStrings sets "key:%012d" to value for keys keys, a few thousand to a
// transaction.
func fillStrings(b *testing.B, s *server, keys int, value []byte) {
	b.Helper()
	const perTxn = 5000
	for lo := 0; lo < keys; lo += perTxn {
		tx, err := s.db.Begin(s.ctx, true)
		if err != nil {
			b.Fatal(err)
		}
		for i := lo; i < min(keys, lo+perTxn); i++ {
			if err := storeMeta(tx, fmt.Appendf(nil, "key:%012d", i), meta{typ: typeString, value: value}); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPipelinedGet(b *testing.B, addr string, conns, pipeline, keys int, value []byte) {
	var left atomic.Int64
	left.Store(int64(b.N))
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	wantHeader := "$" + strconv.Itoa(len(value)) + "\r\n"
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	cpu0 := processCPU(b)
	b.ResetTimer()
	start := time.Now()
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			r := bufio.NewReader(c)
			var req []byte
			got := make([]byte, len(value)+2)
			for {
				n := min(int64(pipeline), left.Add(-int64(pipeline))+int64(pipeline))
				if n <= 0 {
					return
				}
				req = req[:0]
				for range n {
					req = fmt.Appendf(req, "*2\r\n$3\r\nGET\r\n$16\r\nkey:%012d\r\n", rng.IntN(keys))
				}
				if _, err := c.Write(req); err != nil {
					errs <- err
					return
				}
				for range n {
					line, err := r.ReadString('\n')
					if err != nil {
						errs <- err
						return
					}
					if line != wantHeader {
						errs <- fmt.Errorf("GET replied %q, want %q", line, wantHeader)
						return
					}
					if _, err := io.ReadFull(r, got); err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(got[:len(value)], value) {
						errs <- fmt.Errorf("GET replied value %q, want %q", got[:len(value)], value)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	reportPipelined(b, start, cpu0, errs, "GETs/s")
}
