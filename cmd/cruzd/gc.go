package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/cruzlog/cruzdb"
)

// The daemon's garbage collector policy (--gc-percent, --gc-memory-limit).
//
// A SET allocates ~2.3 KB, most of it tree nodes that die within a few
// commits, and every collection marks the whole live tree: so collections
// are what GOGC buys. Above the default 100 each doubling of the target
// halves them (bench/journal/2026-12-08-set25.md: the collector's CPU in a
// resp.sh SET run is 0.45-0.51 µs a SET at 100, 0.30-0.32 at 200,
// 0.14-0.19 at 400, idle-time workers not counted) for a heap of up to
// 1+GOGC/100 times the live one. The soft memory limit keeps that bounded
// where it matters, once the node cache is full: by default it is what
// GOGC 200 gives a heap whose live part is the cache and the unflushed
// deltas (three times them, plus 256 MiB for everything else), so a full
// cache costs no more memory than before the target was raised, and a
// smaller working set collects less often.

const (
	defaultGCPercent = 400
	// gcLimitAuto and gcLimitOff are config.GCMemoryLimit's two words.
	gcLimitAuto int64 = 0
	gcLimitOff  int64 = -1
	// gcLimitSlack is the auto limit's allowance beyond the tree's memory.
	gcLimitSlack = 256 << 20
)

// gcLimit is the --gc-memory-limit flag: auto, off or a byte size.
type gcLimit struct{ p *int64 }

func (g gcLimit) String() string {
	switch {
	case g.p == nil || *g.p == gcLimitAuto:
		return "auto"
	case *g.p < 0:
		return "off"
	}
	return formatBytes(*g.p)
}

func (g gcLimit) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto":
		*g.p = gcLimitAuto
		return nil
	case "off":
		*g.p = gcLimitOff
		return nil
	}
	n, err := parseBytes(s)
	if err != nil {
		return fmt.Errorf("%w (or auto, or off)", err)
	}
	if n == 0 {
		return fmt.Errorf("a memory limit of 0 bytes: want auto, off or a size")
	}
	*g.p = n
	return nil
}

// autoGCLimit is the auto memory limit for a cache of cache bytes and
// unflushed deltas of up to unflushed bytes (0: cruzdb's defaults).
func autoGCLimit(cache, unflushed int64) int64 {
	d := cruzdb.DefaultOptions()
	if cache <= 0 {
		cache = d.CacheBytes
	}
	if unflushed <= 0 {
		unflushed = d.MaxUnflushedBytes
	}
	return 3*(cache+unflushed) + gcLimitSlack
}

// gcPolicy is what the daemon sets: the GC target (setPercent false: the
// GOGC environment variable is set and wins) and the soft memory limit
// (setLimit false: GOMEMLIMIT is set and wins, or the limit is off).
func gcPolicy(c *config, getenv func(string) string) (percent int, setPercent bool, limit int64, setLimit bool) {
	percent, setPercent = c.GCPercent, getenv("GOGC") == ""
	switch {
	case getenv("GOMEMLIMIT") != "" || c.GCMemoryLimit == gcLimitOff:
	case c.GCMemoryLimit == gcLimitAuto:
		limit, setLimit = autoGCLimit(c.CacheBytes, c.MaxUnflushedBytes), true
	default:
		limit, setLimit = c.GCMemoryLimit, true
	}
	return percent, setPercent, limit, setLimit
}

// applyGCPolicy sets the policy gcPolicy gives for c and the process's
// environment.
func applyGCPolicy(c *config, getenv func(string) string) {
	percent, setPercent, limit, setLimit := gcPolicy(c, getenv)
	if setPercent {
		debug.SetGCPercent(percent)
	}
	if setLimit {
		debug.SetMemoryLimit(limit)
	}
}
