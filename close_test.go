package cruzdb

import (
	"testing"

	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestCloseJoinsWatchRunner: once Close returns, the goroutine that fails
// waiters when replay stops has returned too.
func TestCloseJoinsWatchRunner(t *testing.T) {
	db, err := Open("", &Options{Log: memlog.New(nil)})
	if err != nil {
		t.Fatal(err)
	}
	put(t, db, "k", "v")
	select {
	case <-db.watchDone:
		t.Fatal("watchRunner returned while the DB is open")
	default:
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-db.watchDone:
	default:
		t.Fatal("Close returned before watchRunner did")
	}
}
