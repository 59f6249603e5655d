package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cruzlog/cruzdb"
	"github.com/dgraph-io/badger/v4"
	bolt "go.etcd.io/bbolt"
)

// Keys are 16 bytes and values 100 bytes in every experiment.
const (
	keySize   = 16
	valueSize = 100
)

// appendKey appends the 16-byte key of record i: "k" and 15 digits, so that
// key order is numeric order.
func appendKey(dst []byte, i uint64) []byte {
	var d [20]byte
	s := strconv.AppendUint(d[:0], i, 10)
	dst = append(dst, 'k')
	for n := len(s); n < keySize-1; n++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

func makeKey(i uint64) []byte { return appendKey(make([]byte, 0, keySize), i) }

// kv is what the experiments need from a key-value store. Every
// implementation copies what it returns.
type kv interface {
	// Put writes one key in its own transaction (durable when opened with
	// Sync).
	Put(key, val []byte) error
	// Get returns a copy of key's value (an error if missing).
	Get(key []byte) ([]byte, error)
	// Scan reads up to n keys from start in order and returns how many.
	Scan(start []byte, n int) (int, error)
	// RMW reads key and writes f(value) back in one transaction where the
	// store has transactions (Pebble has none: a Get then a Set).
	RMW(key []byte, f func([]byte) []byte) error
	// Load writes records 0..n-1 fast (big batches, not synced per record).
	Load(n int, val func(i int) []byte) error
	Close() error
}

type kvOpts struct {
	// Sync makes each Put durable before it returns.
	Sync bool
	// CacheBytes, if > 0, bounds the store's own cache.
	CacheBytes int64
}

type system struct {
	name string
	open func(dir string, o kvOpts) (kv, error)
	// cacheNote says what a CacheBytes bound means for it.
	cacheNote string
}

var systems = []system{
	{"cruzdb", openCruz, "CacheBytes (clean nodes beyond it are evicted and reloaded from their afterimages)"},
	{"bbolt", openBolt, "none: bbolt reads through mmap, the OS page cache holds the file"},
	{"pebble", openPebble, "block cache (pebble.NewCache)"},
	{"badger", openBadger, "block cache (BlockCacheSize)"},
}

// isConflict reports a transaction conflict, which the workload counts and
// retries rather than failing on.
func isConflict(err error) bool {
	return errors.Is(err, cruzdb.ErrConflict) || errors.Is(err, badger.ErrConflict)
}

// cruzdb on its embedded log (seglog for a new directory).
type cruzKV struct{ db *cruzdb.DB }

func openCruz(dir string, o kvOpts) (kv, error) {
	opts := cruzdb.DefaultOptions()
	opts.NoSync = !o.Sync
	opts.MaxConflictRetries = badgerRetries // give up like Badger does, not at ctx's end
	if o.CacheBytes > 0 {
		opts.CacheBytes = o.CacheBytes
	}
	db, err := cruzdb.Open(dir, &opts)
	if err != nil {
		return nil, err
	}
	return &cruzKV{db}, nil
}

func (c *cruzKV) Put(k, v []byte) error {
	return c.db.Update(context.Background(), func(tx *cruzdb.Txn) error { return tx.Put(k, v) })
}

func (c *cruzKV) Get(k []byte) (v []byte, err error) {
	err = c.db.View(context.Background(), func(tx *cruzdb.Txn) error {
		v, err = tx.Get(k)
		return err
	})
	return v, err
}

func (c *cruzKV) Scan(start []byte, n int) (int, error) {
	got := 0
	err := c.db.View(context.Background(), func(tx *cruzdb.Txn) error {
		for range tx.Range(start, nil) {
			got++
			if got == n {
				break
			}
		}
		return nil
	})
	return got, err
}

func (c *cruzKV) RMW(k []byte, f func([]byte) []byte) error {
	return c.db.Update(context.Background(), func(tx *cruzdb.Txn) error {
		v, err := tx.Get(k)
		if err != nil && !errors.Is(err, cruzdb.ErrNotFound) {
			return err
		}
		return tx.Put(k, f(v))
	})
}

func (c *cruzKV) Load(n int, val func(int) []byte) error {
	const batch = 1000
	for i := 0; i < n; i += batch {
		err := c.db.Update(context.Background(), func(tx *cruzdb.Txn) error {
			for j := i; j < min(n, i+batch); j++ {
				if err := tx.Put(makeKey(uint64(j)), val(j)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return c.db.Flush(context.Background())
}

func (c *cruzKV) Close() error { return c.db.Close() }

// bbolt, one Update per transaction.
type boltKV struct{ db *bolt.DB }

var boltBucket = []byte("b")

func openBolt(dir string, o kvOpts) (kv, error) {
	db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, &bolt.Options{
		Timeout:         time.Second,
		NoSync:          !o.Sync,
		InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	return &boltKV{db}, nil
}

func (b *boltKV) Put(k, v []byte) error {
	return b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Put(k, v) })
}

var errMissing = errors.New("key not found")

func (b *boltKV) Get(k []byte) (v []byte, err error) {
	err = b.db.View(func(tx *bolt.Tx) error {
		if x := tx.Bucket(boltBucket).Get(k); x != nil {
			v = bytes.Clone(x)
			return nil
		}
		return errMissing
	})
	return v, err
}

func (b *boltKV) Scan(start []byte, n int) (int, error) {
	got := 0
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(boltBucket).Cursor()
		for k, v := c.Seek(start); k != nil && got < n; k, v = c.Next() {
			_ = bytes.Clone(v)
			got++
		}
		return nil
	})
	return got, err
}

func (b *boltKV) RMW(k []byte, f func([]byte) []byte) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(boltBucket)
		return bk.Put(k, f(bytes.Clone(bk.Get(k))))
	})
}

func (b *boltKV) Load(n int, val func(int) []byte) error {
	const batch = 10000
	for i := 0; i < n; i += batch {
		err := b.db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(boltBucket)
			bk.FillPercent = 0.9
			for j := i; j < min(n, i+batch); j++ {
				if err := bk.Put(makeKey(uint64(j)), val(j)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return b.db.Sync()
}

func (b *boltKV) Close() error { return b.db.Close() }

// Pebble, Set with pebble.Sync.
type pebbleKV struct {
	db *pebble.DB
	wo *pebble.WriteOptions
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	log.Fatalf("pebble: "+format, args...)
}

func openPebble(dir string, o kvOpts) (kv, error) {
	opts := &pebble.Options{Logger: quietPebble{}}
	if o.CacheBytes > 0 {
		c := pebble.NewCache(o.CacheBytes)
		defer c.Unref()
		opts.Cache = c
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	wo := pebble.NoSync
	if o.Sync {
		wo = pebble.Sync
	}
	return &pebbleKV{db, wo}, nil
}

func (p *pebbleKV) Put(k, v []byte) error { return p.db.Set(k, v, p.wo) }

func (p *pebbleKV) Get(k []byte) ([]byte, error) {
	v, c, err := p.db.Get(k)
	if err != nil {
		return nil, err
	}
	v = bytes.Clone(v)
	return v, c.Close()
}

func (p *pebbleKV) Scan(start []byte, n int) (int, error) {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: start})
	if err != nil {
		return 0, err
	}
	got := 0
	for ok := it.First(); ok && got < n; ok = it.Next() {
		_ = bytes.Clone(it.Value())
		got++
	}
	return got, it.Close()
}

func (p *pebbleKV) RMW(k []byte, f func([]byte) []byte) error {
	v, err := p.Get(k)
	if err != nil && !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	return p.db.Set(k, f(v), p.wo)
}

func (p *pebbleKV) Load(n int, val func(int) []byte) error {
	const batch = 10000
	for i := 0; i < n; i += batch {
		b := p.db.NewBatch()
		for j := i; j < min(n, i+batch); j++ {
			if err := b.Set(makeKey(uint64(j)), val(j), nil); err != nil {
				return err
			}
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
	}
	return p.db.Flush()
}

func (p *pebbleKV) Close() error { return p.db.Close() }

// Badger, SyncWrites for durable transactions.
type badgerKV struct{ db *badger.DB }

func openBadger(dir string, o kvOpts) (kv, error) {
	opts := badger.DefaultOptions(dir).WithSyncWrites(o.Sync).WithLogger(nil)
	if o.CacheBytes > 0 {
		opts = opts.WithBlockCacheSize(o.CacheBytes)
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, err
	}
	return &badgerKV{db}, nil
}

func (b *badgerKV) Put(k, v []byte) error {
	return b.db.Update(func(tx *badger.Txn) error { return tx.Set(k, v) })
}

func (b *badgerKV) Get(k []byte) (v []byte, err error) {
	err = b.db.View(func(tx *badger.Txn) error {
		it, err := tx.Get(k)
		if err != nil {
			return err
		}
		v, err = it.ValueCopy(nil)
		return err
	})
	return v, err
}

func (b *badgerKV) Scan(start []byte, n int) (int, error) {
	got := 0
	err := b.db.View(func(tx *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchSize = n
		it := tx.NewIterator(o)
		defer it.Close()
		for it.Seek(start); it.Valid() && got < n; it.Next() {
			if _, err := it.Item().ValueCopy(nil); err != nil {
				return err
			}
			got++
		}
		return nil
	})
	return got, err
}

// badgerRetries is how often Badger's RMW, and cruzdb's Update here,
// retry a conflict.
const badgerRetries = 10

func (b *badgerKV) RMW(k []byte, f func([]byte) []byte) error {
	var err error
	for range badgerRetries + 1 {
		if err = b.rmw(k, f); !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return err
}

func (b *badgerKV) rmw(k []byte, f func([]byte) []byte) error {
	return b.db.Update(func(tx *badger.Txn) error {
		var v []byte
		it, err := tx.Get(k)
		switch {
		case err == nil:
			if v, err = it.ValueCopy(nil); err != nil {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		return tx.Set(k, f(v))
	})
}

func (b *badgerKV) Load(n int, val func(int) []byte) error {
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	for i := 0; i < n; i++ {
		if err := wb.Set(makeKey(uint64(i)), val(i)); err != nil {
			return err
		}
	}
	return wb.Flush()
}

func (b *badgerKV) Close() error { return b.db.Close() }

// openLoaded opens sys in a fresh directory, loads n records without
// syncing each, closes it (so LSM stores flush their memtables and reads
// come from their tables and caches) and reopens it with o.
func (e *Env) openLoaded(sys system, n int, o kvOpts) (kv, func(), error) {
	dir, cleanup, err := e.tempDir(sys.name)
	if err != nil {
		return nil, nil, err
	}
	db, err := sys.open(dir, kvOpts{})
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("open %s: %w", sys.name, err)
	}
	vals := newValues(e.Seed)
	if err := db.Load(n, func(i int) []byte { return vals.get(uint64(i)) }); err != nil {
		db.Close()
		cleanup()
		return nil, nil, fmt.Errorf("load %s: %w", sys.name, err)
	}
	if err := db.Close(); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("close %s: %w", sys.name, err)
	}
	db, err = sys.open(dir, o)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("reopen %s: %w", sys.name, err)
	}
	return db, func() { db.Close(); cleanup() }, nil
}
