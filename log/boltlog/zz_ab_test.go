package boltlog

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

type abStore struct {
	name string
	op   func(n, conc int) time.Duration
	res  []float64
}

func TestZZAB(t *testing.T) {
	if os.Getenv("ZZAB") == "" {
		t.Skip()
	}
	size, _ := strconv.Atoi(os.Getenv("ZZSIZE"))
	conc, _ := strconv.Atoi(os.Getenv("ZZCONC"))
	rounds, _ := strconv.Atoi(os.Getenv("ZZROUNDS"))
	k, _ := strconv.Atoi(os.Getenv("ZZK"))
	data := make([]byte, size)
	dir := t.TempDir()
	var stores []*abStore
	for _, np := range []bool{false, true} {
		l := mustOpen(t, fmt.Sprintf("%s/l%v", dir, np), &Options{NoPreallocate: np})
		defer l.Close()
		stores = append(stores, &abStore{name: fmt.Sprintf("boltlog noprealloc=%v", np), op: func(n, conc int) time.Duration {
			var wg sync.WaitGroup
			start := time.Now()
			for range conc {
				wg.Go(func() {
					for range n / conc {
						if _, err := l.Append(bg, data); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			return time.Since(start)
		}})
	}
	if conc == 1 {
		for _, tuned := range []bool{false, true} {
			var opts *bolt.Options
			if tuned {
				opts = &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType, InitialMmapSize: 1 << 30}
			}
			db, err := bolt.Open(fmt.Sprintf("%s/b%v", dir, tuned), 0o600, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
			var i uint64
			stores = append(stores, &abStore{name: fmt.Sprintf("bolt put tuned=%v", tuned), op: func(n, conc int) time.Duration {
				start := time.Now()
				for range n {
					i++
					db.Update(func(tx *bolt.Tx) error {
						return tx.Bucket([]byte("b")).Put(binary.BigEndian.AppendUint64(nil, i), data)
					})
				}
				return time.Since(start)
			}})
		}
	}
	for r := range rounds {
		for j := range stores {
			s := stores[(j+r)%len(stores)]
			d := s.op(k, conc)
			s.res = append(s.res, float64(d.Nanoseconds())/float64(k)/1e3)
		}
	}
	for _, s := range stores {
		slices.Sort(s.res)
		t.Logf("%-26s median %7.1f µs/op (%8.0f ops/s)  min %7.1f  max %7.1f", s.name, s.res[len(s.res)/2], 1e6/s.res[len(s.res)/2], s.res[0], s.res[len(s.res)-1])
	}
}
