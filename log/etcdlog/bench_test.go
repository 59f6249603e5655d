package etcdlog

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkNodes: 64 appenders of 200-byte entries spread over 1 or 2 Logs
// on one name (each with its own client), on the package's test etcd
// member (no fsync), with and without guesses of the tail in the Else
// branch. Reports appends/s, the fraction of transactions that landed
// nothing (lost) and that landed by a guess.
func BenchmarkNodes(b *testing.B) {
	url := sharedEtcd(b)
	data := bytes.Repeat([]byte{0x5a}, 200)
	for _, nodes := range []int{1, 2} {
		for _, guesses := range []int{0, 1, maxGuesses} {
			if nodes == 1 && guesses > 0 {
				continue
			}
			b.Run(fmt.Sprintf("nodes=%d/guesses=%d", nodes, guesses), func(b *testing.B) {
				name := uniqueName(b)
				var logs []*Log
				for range nodes {
					l := mustOpen(b, newClient(b, url), name, nil)
					l.maxGuesses = guesses
					logs = append(logs, l)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for i := range 64 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							if _, err := logs[i%nodes].Append(b.Context(), data); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				var st Stats
				for _, l := range logs {
					s := l.Stats()
					st.Txns, st.Lost, st.NestedWon = st.Txns+s.Txns, st.Lost+s.Lost, st.NestedWon+s.NestedWon
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
				b.ReportMetric(100*float64(st.Lost)/float64(max(st.Txns, 1)), "%lost")
				b.ReportMetric(100*float64(st.NestedWon)/float64(max(st.Txns, 1)), "%guessed")
			})
		}
	}
}
