package cruzdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestLogStaysBounded is issue 19's uniform overwrite workload: 10 rounds of
// 100K puts (100-byte values) over 1,000 keys, default options, no caller
// action. Puts go 100 to a transaction to keep the test fast; the workload
// stays a uniform overwrite of a fixed key set. The live log (the bytes the
// memlog still holds) must stop growing: the highest it reaches in the last
// rounds is within 1.5x of the highest in the first three, and within 16x
// the live data. Under the race detector (CI) the rounds are 10K puts; the
// full size runs without it (go test -run TestLogStaysBounded).
func TestLogStaysBounded(t *testing.T) {
	const (
		rounds  = 10
		keys    = 1000
		perTxn  = 100
		valSize = 100
	)
	puts := 100_000
	if raceEnabled {
		puts = 10_000
	}
	l := memlog.New(nil)
	db, err := Open("", &Options{Log: l})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(19, 19))
	val := make([]byte, valSize)
	var highEarly, highLate, liveData int64
	for round := 1; round <= rounds; round++ {
		var high int64
		for i := 0; i < puts/perTxn; i++ {
			err := db.Update(ctx, func(tx *Txn) error {
				for range perTxn {
					k := fmt.Sprintf("key%05d", r.IntN(keys))
					for j := range val {
						val[j] = byte('a' + r.IntN(26))
					}
					if err := tx.Put([]byte(k), val); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if i%(puts/perTxn/20) == 0 {
				lb := liveBytes(t, l)
				high = max(high, lb)
			}
		}
		high = max(high, liveBytes(t, l))
		st := db.Stats()
		t.Logf("round %d: live log high %d bytes (stats: live %d, checkpoints %d, auto %d, trimmed below %d, position %d, prepare %v, authority %v, image %d bytes, commits held %d)",
			round, high, st.LogLiveBytes, st.Checkpoints, st.AutoCheckpoints, st.TrimmedBelow, st.Position, st.CheckpointPrepare, st.CheckpointAuthority, st.CheckpointBytes/max(1, st.CheckpointsWritten), st.CheckpointWaits)
		if round <= 3 {
			highEarly = max(highEarly, high)
		} else {
			highLate = max(highLate, high)
		}
	}
	err = db.View(ctx, func(tx *Txn) error {
		for k, v := range tx.Range(nil, nil) {
			liveData += int64(len(k) + len(v))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("live data %d bytes; live log high %d in rounds 1-3, %d in rounds 4-%d", liveData, highEarly, highLate, rounds)
	if highLate > highEarly*3/2 {
		t.Fatalf("live log still grows: %d bytes high in the last rounds, %d in the first three", highLate, highEarly)
	}
	if highLate > 16*liveData {
		t.Fatalf("live log %d bytes is over 16x the live data (%d bytes)", highLate, liveData)
	}
	if st := db.Stats(); st.AutoCheckpoints == 0 || st.TrimmedBelow == 0 {
		t.Fatalf("no automatic checkpoint trimmed the log: %+v", st)
	}
}
