package etcdlog

import (
	"errors"
	"fmt"
	"time"

	"github.com/cruzlog/cruzdb/internal/opt"
)

// Options configure a Log. Open copies them; a nil *Options means all
// defaults. Every Log sharing one name should use the same KeyPrefix (the
// other fields may differ from node to node).
type Options struct {
	// KeyPrefix is put before the log's name in every etcd key, so that the
	// log's keys are KeyPrefix + name + "/...". Default "cruzdb/log/".
	KeyPrefix string
	// MaxBatchEntries bounds how many appends the committer writes in one
	// etcd transaction. It must stay below etcd's --max-txn-ops (128 by
	// default): a transaction puts every entry and the tail. Default 100.
	MaxBatchEntries int
	// MaxBatchBytes bounds the bytes of entries written inline in one
	// transaction, which must stay below etcd's --max-request-bytes
	// (1.5 MiB by default). Default 1 MiB.
	MaxBatchBytes int
	// ChunkSize: an entry longer than ChunkSize is written as chunks of at
	// most ChunkSize bytes, each in its own request, before the entry naming
	// them. The transaction that writes the entry touches every chunk, so
	// ChunkSize must be at least 256 KiB (at most 64 chunks, within etcd's
	// --max-txn-ops) and at most MaxBatchBytes. Default 1 MiB.
	ChunkSize int
	// ChunkLeaseTTL is how long the chunks of a large entry live if their
	// writer dies before writing the entry that names them: they are put
	// under an etcd lease of this TTL, which the entry's transaction
	// detaches. A writer that takes longer than this between its first chunk
	// and its entry starts over. Default 60s; etcd rounds very short TTLs
	// up to its minimum (a few seconds).
	ChunkLeaseTTL time.Duration
	// RequestTimeout bounds each etcd request the log makes on behalf of
	// several callers (the committer's transactions, background trimming,
	// re-reading the tail after the watch breaks). Calls made for one
	// caller use the caller's context. Default 10s.
	RequestTimeout time.Duration
	// CacheBytes bounds the entries kept in memory as the watch delivers
	// them (and as this node appends them), so that replay reads the newest
	// entries without a round trip. 0 means the default, 64 MiB; a negative
	// value turns the cache off.
	CacheBytes int
	// NoCompact leaves etcd's history alone after trimming. By default the
	// background trimmer compacts etcd's history up to the revision of its
	// delete, so that trimmed entries free space; that compacts the whole
	// etcd keyspace, so set NoCompact when etcd runs its own
	// --auto-compaction or keeps history other users need. Default false.
	NoCompact bool
}

const minChunkSize = 256 << 10

// ErrBadOptions: Options out of range.
var ErrBadOptions = errors.New("etcdlog: bad options")

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	opt.Default(&c.KeyPrefix, "cruzdb/log/")
	opt.Default(&c.MaxBatchEntries, 100)
	opt.Default(&c.MaxBatchBytes, 1<<20)
	opt.Default(&c.ChunkSize, 1<<20)
	opt.Default(&c.ChunkLeaseTTL, 60*time.Second)
	opt.Default(&c.RequestTimeout, 10*time.Second)
	opt.Default(&c.CacheBytes, 64<<20)
	switch {
	case c.MaxBatchEntries < 1 || c.MaxBatchEntries > 1000:
		return c, fmt.Errorf("%w: MaxBatchEntries %d not in [1, 1000]", ErrBadOptions, c.MaxBatchEntries)
	case c.MaxBatchBytes < 1:
		return c, fmt.Errorf("%w: MaxBatchBytes %d < 1", ErrBadOptions, c.MaxBatchBytes)
	case c.ChunkSize < minChunkSize || c.ChunkSize > c.MaxBatchBytes:
		return c, fmt.Errorf("%w: ChunkSize %d not in [%d, MaxBatchBytes %d]", ErrBadOptions, c.ChunkSize, minChunkSize, c.MaxBatchBytes)
	case c.ChunkLeaseTTL < time.Second:
		return c, fmt.Errorf("%w: ChunkLeaseTTL %v < 1s", ErrBadOptions, c.ChunkLeaseTTL)
	case c.RequestTimeout < 0:
		return c, fmt.Errorf("%w: RequestTimeout %v < 0", ErrBadOptions, c.RequestTimeout)
	}
	return c, nil
}
