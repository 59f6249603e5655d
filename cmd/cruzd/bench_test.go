package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPipelinedSet is redis-benchmark's pipelined SET test in-process
// (-c 50 -P 16 -r 100000 -d 100): 50 connections, each writing 16 SETs of a
// 100-byte value to random keys among 100K in one write and reading the 16
// replies before the next. An op is one SET. It reports SETs/s, the CPU time
// of the whole process per SET (the client goroutines' share included: they
// build requests and parse "+OK" replies) and the cores busy, so that
//
//	go test -run '^$' -bench PipelinedSet -cpuprofile cpu.out ./cmd/cruzd
//
// profiles the daemon's write path without a script around it. "seglog" is
// the default durable configuration (the embedded seglog log, fsync,
// automatic checkpoints); "seglog-nockpt" turns automatic checkpoints off
// (--checkpoint-log-ratio -1) and "seglog-nosync" fsync, to show what each
// costs. Besides time and CPU it reports the bytes of afterimages and of
// checkpoint images the daemon wrote per SET (Stats.AfterimageBytes,
// CheckpointBytes): the log work a SET causes.
func BenchmarkPipelinedSet(b *testing.B) {
	for _, bc := range []struct {
		name     string
		noSync   bool
		logRatio float64
	}{{"seglog", false, 0}, {"seglog-nockpt", false, -1}, {"seglog-nosync", true, 0}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			s := testServer(b, func(c *config) {
				c.DataDir = dir
				c.NoSync = bc.noSync
				if bc.logRatio != 0 {
					c.Checkpoint.LogRatio = bc.logRatio
				}
			})
			st0 := s.db.Stats()
			benchPipelinedSet(b, s.Addr().String(), 50, 16)
			st := s.db.Stats()
			b.ReportMetric(float64(st.AfterimageBytes-st0.AfterimageBytes)/float64(b.N), "afterimage-B/op")
			b.ReportMetric(float64(st.CheckpointBytes-st0.CheckpointBytes)/float64(b.N), "checkpoint-B/op")
		})
	}
}

func benchPipelinedSet(b *testing.B, addr string, conns, pipeline int) {
	const keys, valueSize = 100_000, 100
	value := bytes.Repeat([]byte("v"), valueSize)
	runPipelined(b, addr, conns, pipeline, 7, "SETs/s",
		func(req []byte, rng *rand.Rand) []byte {
			key := fmt.Sprintf("key:%012d", rng.IntN(keys))
			req = fmt.Appendf(req, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", len(key), key, len(value))
			return append(append(req, value...), "\r\n"...)
		},
		func(r *bufio.Reader) error {
			line, err := r.ReadString('\n')
			if err == nil && line != "+OK\r\n" {
				err = fmt.Errorf("SET replied %q, want +OK", line)
			}
			return err
		})
}

// runPipelined drives a pipelined benchmark: conns connections each take
// pipeline requests at a time from b.N until none are left (b.N need not
// divide evenly), write them in one write (each built by add, with a
// generator seeded by the connection's index and seed) and read their
// replies (each checked by reply) before the next. It fails on the first
// error and reports the requests per second (as unit), the process's CPU
// µs per request (the client goroutines included) and the cores used.
func runPipelined(b *testing.B, addr string, conns, pipeline int, seed uint64, unit string,
	add func(req []byte, rng *rand.Rand) []byte, reply func(r *bufio.Reader) error) {
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
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	cpu0 := processCPU(b)
	b.ResetTimer()
	start := time.Now()
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), seed))
			r := bufio.NewReader(c)
			var req []byte
			for {
				n := min(int64(pipeline), left.Add(-int64(pipeline))+int64(pipeline))
				if n <= 0 {
					return
				}
				req = req[:0]
				for range n {
					req = add(req, rng)
				}
				if _, err := c.Write(req); err != nil {
					errs <- err
					return
				}
				for range n {
					if err := reply(r); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	cpu := processCPU(b) - cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cores")
}

// processCPU is the user plus system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
