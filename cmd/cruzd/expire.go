package main

import (
	"bytes"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb"
)

// Expiry. A key's expiry is unix milliseconds in its metadata. Whether a
// key has expired is decided by the server that runs a command, by its own
// clock, when it reads the key; what the command then writes (or does not)
// is in its intention, and the key's metadata is in the intention's read
// set, so the processor's decision does not depend on any clock: the same
// log gives the same state on every node. See README.md, "Expiry".
//
// Expired keys leave the database through intentions: a key a command
// finds expired is queued for deletion, and a background sweep walks the
// keys a bounded number at a time, deleting the expired ones and the
// elements of hashes and sets that no metadata names any more.

const (
	// sweepEvery is how often the sweeper runs when cfg.sweepInterval is 0.
	sweepEvery = 100 * time.Millisecond
	// sweepKeys and sweepElems bound one sweep's reads; sweepQueue bounds
	// the keys waiting for a lazy deletion (more are dropped: the sweep
	// finds them).
	sweepKeys  = 128
	sweepElems = 512
	sweepQueue = 1024
)

// now is the server's clock in unix milliseconds.
func (s *server) now() int64 {
	if s.cfg.clock != nil {
		return s.cfg.clock()
	}
	return time.Now().UnixMilli()
}

// expiredSeen queues key, found expired by a command, for deletion.
func (s *server) expiredSeen(key []byte) {
	if s.sweep == nil {
		return
	}
	select {
	case s.sweep.queue <- bytes.Clone(key):
	default:
	}
}

type sweeper struct {
	s     *server
	queue chan []byte
	stop  chan struct{}
	done  chan struct{}

	// Where the next sweep of keys and of elements starts (nil: the
	// beginning). Only the sweeper's goroutine (or a test, with it
	// stopped) uses them.
	keyCursor  []byte
	elemCursor []byte

	expired atomic.Int64 // keys deleted for their expiry (INFO expired_keys)
}

func newSweeper(s *server) *sweeper {
	w := &sweeper{s: s, queue: make(chan []byte, sweepQueue), stop: make(chan struct{}), done: make(chan struct{})}
	every := s.cfg.sweepInterval
	if every == 0 {
		every = sweepEvery
	}
	if every < 0 {
		close(w.done)
		return w
	}
	go w.loop(every)
	return w
}

func (w *sweeper) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *sweeper) loop(every time.Duration) {
	defer close(w.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.once()
		}
	}
}

// once runs one bounded sweep: the queued keys, then the next sweepKeys
// keys, then the next sweepElems elements.
func (w *sweeper) once() {
	var keys [][]byte
	for len(keys) < sweepKeys {
		select {
		case k := <-w.queue:
			keys = append(keys, k)
			continue
		default:
		}
		break
	}
	w.deleteExpired(keys)
	w.deleteExpired(w.scanKeys())
	w.deleteOrphans()
}

// scanKeys returns the expired keys among the next sweepKeys keys.
func (w *sweeper) scanKeys() [][]byte {
	var expired [][]byte
	now := w.s.now()
	lo := metaLo
	if w.keyCursor != nil {
		lo = metaKey(w.keyCursor)
	}
	w.keyCursor = nil
	n := 0
	w.s.db.View(w.s.ctx, func(tx *cruzdb.Txn) error {
		for mk, v := range tx.Range(lo, metaHi) {
			if n == sweepKeys {
				w.keyCursor = mk[1:]
				break
			}
			n++
			if metaExpired(v, now) {
				expired = append(expired, mk[1:])
			}
		}
		return tx.Err()
	})
	return expired
}

// deleteExpired deletes those of keys that are expired, in one
// transaction that reads each key's metadata: a write to one of them
// committed meanwhile makes it conflict, and the sweep tries again later.
func (w *sweeper) deleteExpired(keys [][]byte) {
	if len(keys) == 0 {
		return
	}
	s := w.s
	var reqs []lockReq
	for _, k := range keys {
		reqs = append(reqs, s.locks.req(k, true))
	}
	held := s.locks.acquire(reqs)
	defer s.locks.release(held)
	tx, err := s.db.Begin(s.ctx, true)
	if err != nil {
		return
	}
	now := s.now()
	n := 0
	for _, k := range keys {
		v, err := tx.Get(metaKey(k))
		if err != nil || !metaExpired(v, now) {
			continue
		}
		if tx.Delete(metaKey(k)) == nil {
			n++
		}
	}
	if err := tx.Commit(); err == nil {
		w.expired.Add(int64(n))
	}
}

// deleteOrphans deletes, among the next sweepElems elements, those whose
// key's metadata is gone or names another version.
func (w *sweeper) deleteOrphans() {
	s := w.s
	lo, hi := []byte{subPrefix}, []byte{subPrefix + 1}
	if w.elemCursor != nil {
		lo = w.elemCursor
	}
	w.elemCursor = nil
	var orphans [][]byte
	n := 0
	s.db.View(s.ctx, func(tx *cruzdb.Txn) error {
		var lastKey []byte
		var lastVersion uint64
		live := false
		for ek := range tx.Keys(lo, hi) {
			if n == sweepElems {
				w.elemCursor = ek
				break
			}
			n++
			key, version, _, ok := parseSubKey(ek)
			if !ok {
				continue
			}
			if lastKey == nil || !bytes.Equal(key, lastKey) || version != lastVersion {
				lastKey, lastVersion = bytes.Clone(key), version
				v, err := tx.Get(metaKey(key))
				live = false
				if err == nil {
					if m, err := decodeMeta(v); err == nil && m.typ != typeString && m.version == version {
						live = true
					}
				}
			}
			if !live {
				orphans = append(orphans, ek)
			}
		}
		return tx.Err()
	})
	if len(orphans) == 0 {
		return
	}
	// Elements of a version no metadata names are never read or written by
	// a command again (a new key gets a new version), so blind deletes are
	// safe.
	tx, err := s.db.Begin(s.ctx, true)
	if err != nil {
		return
	}
	for _, k := range orphans {
		tx.Delete(k)
	}
	tx.Commit()
}
