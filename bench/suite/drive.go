package suite

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// values is a pool of random 100-byte values shared by every system in a
// run, so that all write the same bytes.
type values struct{ pool [][]byte }

func newValues(seed uint64) *values {
	r := rand.New(rand.NewPCG(seed, 0x76616c))
	v := &values{pool: make([][]byte, 1024)}
	for i := range v.pool {
		b := make([]byte, valueSize)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		v.pool[i] = b
	}
	return v
}

func (v *values) get(i uint64) []byte { return v.pool[i%uint64(len(v.pool))] }

// errSoft marks an operation that failed in an expected way (a conflict
// that gave up); drive counts it and carries on.
var errSoft = errors.New("soft failure")

// driveResult is what a closed-loop run measured.
type driveResult struct {
	ops, soft uint64
	elapsed   time.Duration
	lat       []time.Duration // a sample of operation latencies, sorted
}

func (r driveResult) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// quantile of the sampled latencies in µs.
func (r driveResult) quantile(q float64) float64 {
	if len(r.lat) == 0 {
		return math.NaN()
	}
	i := int(q * float64(len(r.lat)-1))
	return float64(r.lat[i]) / 1e3
}

const latSamplesPerClient = 1 << 15

// drive runs clients goroutines, each calling op in a loop for d (after
// warm of warm-up whose operations are not counted), and returns the
// completed operations. op gets its client number, a per-client random
// source seeded from seed, and its sequence number. An error wrapping
// errSoft is counted; any other stops the run and is returned.
func drive(clients int, warm, d time.Duration, seed uint64, op func(c int, r *rand.Rand, i uint64) error) (driveResult, error) {
	var (
		wg        sync.WaitGroup
		measuring atomic.Bool
		stop      atomic.Bool
		ops, soft atomic.Uint64
		firstErr  error
		errOnce   sync.Once
		lats      = make([][]time.Duration, clients)
	)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(c)+1))
			lat := make([]time.Duration, 0, 1024)
			for i := uint64(0); !stop.Load(); i++ {
				t := time.Now()
				err := op(c, r, i)
				el := time.Since(t)
				if err != nil && !errors.Is(err, errSoft) {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				if !measuring.Load() {
					continue
				}
				if err != nil {
					soft.Add(1)
					continue
				}
				ops.Add(1)
				if len(lat) < latSamplesPerClient {
					lat = append(lat, el)
				}
			}
			lats[c] = lat
		}(c)
	}
	time.Sleep(warm)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(d)
	n, s := ops.Load(), soft.Load()
	el := time.Since(start)
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return driveResult{}, firstErr
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	return driveResult{ops: n, soft: s, elapsed: el, lat: all}, nil
}

// zipfian draws ranks in [0, n) with P(rank i) proportional to 1/(i+1)^theta,
// for any theta in (0, 1) (math/rand/v2's Zipf needs s > 1, so it cannot
// draw YCSB's theta 0.99). This is the generator of Gray et al., "Quickly
// generating billion-record synthetic databases" (SIGMOD 1994), which YCSB's
// ZipfianGenerator uses. Ranks are then scrambled (as YCSB's
// ScrambledZipfianGenerator does) so that the hot keys are spread over the
// key space instead of being the lowest keys.
type zipfian struct {
	n                   uint64
	theta, alpha, zetan float64
	eta, halfPowTheta   float64
}

func newZipfian(n uint64, theta float64) *zipfian {
	z := &zipfian{n: n, theta: theta}
	zeta2 := 0.0
	for i := uint64(1); i <= 2 && i <= n; i++ {
		zeta2 += 1 / math.Pow(float64(i), theta)
	}
	for i := uint64(1); i <= n; i++ {
		z.zetan += 1 / math.Pow(float64(i), theta)
	}
	z.alpha = 1 / (1 - theta)
	z.eta = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/z.zetan)
	z.halfPowTheta = 1 + math.Pow(0.5, theta)
	return z
}

// rank draws a rank: 0 is the most popular.
func (z *zipfian) rank(r *rand.Rand) uint64 {
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.halfPowTheta {
		return 1
	}
	k := uint64(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	if k >= z.n {
		k = z.n - 1
	}
	return k
}

// next draws a record number: a rank scrambled by an FNV-1a hash.
func (z *zipfian) next(r *rand.Rand) uint64 {
	return fnv64(z.rank(r)) % z.n
}

func fnv64(v uint64) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < 8; i++ {
		h ^= v & 0xff
		h *= 1099511628211
		v >>= 8
	}
	return h
}

// parallel runs f total times over clients goroutines (each with its own
// random source) and returns the first error.
func parallel(clients, total int, seed uint64, f func(r *rand.Rand, i int) error) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(c)+1000))
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				if err := f(r, i); err != nil {
					errOnce.Do(func() { firstErr = err })
					next.Store(int64(total))
					return
				}
			}
		}(c)
	}
	wg.Wait()
	return firstErr
}
