package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
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
	wantHeader := "$" + strconv.Itoa(len(value)) + "\r\n"
	runPipelined(b, addr, conns, pipeline, 11, "GETs/s",
		func(req []byte, rng *rand.Rand) []byte {
			return fmt.Appendf(req, "*2\r\n$3\r\nGET\r\n$16\r\nkey:%012d\r\n", rng.IntN(keys))
		},
		func(r *bufio.Reader) error {
			line, err := r.ReadString('\n')
			switch {
			case err != nil:
				return err
			case line != wantHeader:
				return fmt.Errorf("GET replied %q, want %q", line, wantHeader)
			}
			got, err := r.Peek(len(value) + 2)
			if err != nil {
				return err
			}
			if !bytes.Equal(got[:len(value)], value) {
				return fmt.Errorf("GET replied value %q, want %q", got[:len(value)], value)
			}
			_, err = r.Discard(len(got))
			return err
		})
}
