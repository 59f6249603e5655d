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
// action. Rounds are 15K puts and go 100 to a transaction to keep the test
// fast; the workload stays a uniform overwrite of a fixed key set. The live log (the bytes the
// memlog still holds, sampled 20 times a round) must stop growing: its mean
// over round 10 is within 1.5x of its mean over round 3, and the mean of
// every later round and the live log at the end are within 16x the live
// data. (Single samples can spike higher on a loaded machine, when
// afterimages of commits made before a checkpoint land late; the highest
// is logged.) Under the race detector (CI) the
// rounds are 10K puts.
func TestLogStaysBounded(t *testing.T) {
	const (
		rounds  = 10
		keys    = 1000
		perTxn  = 100
		valSize = 100
	)
	// About 30 automatic checkpoints a round (10,000 under race: about 20).
	puts := 15_000
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
	var mean [rounds + 1]int64
	var highLate, meanLate, end, liveData int64
	for round := 1; round <= rounds; round++ {
		var high, sum, n int64
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
				high, sum, n = max(high, lb), sum+lb, n+1
			}
		}
		end = liveBytes(t, l)
		mean[round] = sum / n
		if round > 3 {
			highLate = max(highLate, high, end)
			meanLate = max(meanLate, mean[round])
		}
		st := db.Stats()
		t.Logf("round %d: live log mean %d, high %d, at the end %d bytes (checkpoints %d, trimmed below %d, position %d, image %d bytes, commits held %d)",
			round, mean[round], high, end, st.Checkpoints, st.TrimmedBelow, st.Position, st.CheckpointBytes/max(1, st.CheckpointsWritten), st.CheckpointWaits)
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
	t.Logf("live data %d bytes; live log mean %d in round 3, %d in round %d, at most %d after round 3; %d at the end; highest sample after round 3 %d",
		liveData, mean[3], mean[rounds], rounds, meanLate, end, highLate)
	if mean[rounds] > mean[3]*3/2 {
		t.Fatalf("live log still grows: mean %d bytes in round %d, %d in round 3", mean[rounds], rounds, mean[3])
	}
	if meanLate > 16*liveData || end > 16*liveData {
		t.Fatalf("live log %d bytes on average in a round, %d at the end: over 16x the live data (%d bytes)", meanLate, end, liveData)
	}
	if st := db.Stats(); st.AutoCheckpoints == 0 || st.TrimmedBelow == 0 {
		t.Fatalf("no automatic checkpoint trimmed the log: %+v", st)
	}
}
