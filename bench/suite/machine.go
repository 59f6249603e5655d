package suite

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Machine describes where a run happened.
type Machine struct {
	Date       time.Time
	CPU        string
	Cores      int
	GOMAXPROCS int
	Go         string
	OSArch     string
	Kernel     string
	MemTotal   string
	LoadAvg    string // /proc/loadavg at the start: other work on the machine
	DataDir    string
	// FsyncPerSec is the rate of one 4 KiB overwrite + fdatasync of a
	// preallocated file in DataDir, one at a time: the physical line of a
	// durable commit on this disk.
	FsyncPerSec float64
	FsyncMean   time.Duration
	// LoadLatency is the time of one dependent load from a random cache
	// line of a MemSet-byte buffer (a pointer chase): what each node visit
	// of a tree much larger than the CPU caches costs, TLB misses included.
	LoadLatency time.Duration
	MemSet      int
	// PageTouch is the time of the first write to a fresh 4 KiB page of
	// anonymous memory (the page fault; 0 where not measured). Heap growth
	// and every byte a memlog keeps pay it; under some hypervisors it is
	// tens of times a native fault.
	PageTouch time.Duration
}

// DescribeMachine reads the CPU and memory from /proc (where there is one),
// measures the fdatasync rate in dataDir for about d, and measures memory:
// load latency over a buffer of memSet bytes, and the first touch of fresh
// pages.
func DescribeMachine(dataDir string, d time.Duration, memSet int) (*Machine, error) {
	m := &Machine{
		Date:       time.Now(),
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go:         runtime.Version(),
		OSArch:     runtime.GOOS + "/" + runtime.GOARCH,
		CPU:        "unknown",
		DataDir:    dataDir,
	}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.CPU = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		m.MemTotal = v
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	n, el, err := fsyncLoop(dataDir, d)
	if err != nil {
		return nil, err
	}
	m.FsyncPerSec = float64(n) / el.Seconds()
	m.FsyncMean = el / time.Duration(n)
	m.MemSet = memSet
	m.LoadLatency = loadLatency(memSet)
	m.PageTouch = pageTouch(min(memSet/4, 64<<20))
	return m, nil
}

// loadLatency follows a random cycle through the cache lines of a buffer
// of set bytes, each load's address coming from the previous load, and
// returns the mean time of a load.
func loadLatency(set int) time.Duration {
	const words = 64 / 4 // uint32s in a cache line
	lines := max(set/64, 2)
	buf := make([]uint32, lines*words)
	next := make([]uint32, lines)
	for i := range next {
		next[i] = uint32(i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := lines - 1; i > 0; i-- { // Sattolo's shuffle: a single cycle
		j := r.IntN(i)
		next[i], next[j] = next[j], next[i]
	}
	for i, n := range next {
		buf[i*words] = n
	}
	steps := min(2_000_000, 4*lines)
	p := uint32(0)
	start := time.Now()
	for range steps {
		p = buf[int(p)*words]
	}
	el := time.Since(start)
	if p == uint32(lines) { // never: keeps the loop from being optimised away
		fmt.Fprintln(os.Stderr, p)
	}
	return el / time.Duration(steps)
}

func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// fsyncLoop overwrites the first 4 KiB of a preallocated file and
// fdatasyncs it, again and again for about d; it returns the count and the
// time taken.
func fsyncLoop(dir string, d time.Duration) (int, time.Duration, error) {
	f, err := os.CreateTemp(dir, "cruzbench-fsync-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(i)
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	n := 0
	start := time.Now()
	for time.Since(start) < d || n == 0 {
		buf[0] = byte(n)
		if _, err := f.WriteAt(buf, 0); err != nil {
			return 0, 0, err
		}
		if err := fdatasync(f); err != nil {
			return 0, 0, err
		}
		n++
	}
	return n, time.Since(start), nil
}

// Markdown renders the description.
func (m *Machine) Markdown() string {
	var b strings.Builder
	b.WriteString("### Machine\n\n| | |\n|---|---|\n")
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	row("date", m.Date.Format(time.RFC3339))
	row("CPU", m.CPU)
	row("cores (GOMAXPROCS)", fmt.Sprintf("%d (%d)", m.Cores, m.GOMAXPROCS))
	row("memory", m.MemTotal)
	if m.LoadAvg != "" {
		row("load average at start (1, 5, 15 min)", m.LoadAvg)
	}
	row("Go", m.Go)
	row("OS/arch, kernel", m.OSArch+", "+m.Kernel)
	abs, _ := filepath.Abs(m.DataDir)
	row("data directory", abs)
	row("4 KiB overwrite + fdatasync", fmt.Sprintf("%s/s (mean %s)", humanFloat(m.FsyncPerSec), m.FsyncMean.Round(100*time.Nanosecond)))
	if m.LoadLatency > 0 {
		row(fmt.Sprintf("dependent load, random line of %d MiB", m.MemSet>>20), fmt.Sprintf("%.0f ns", float64(m.LoadLatency.Nanoseconds())))
	}
	if m.PageTouch > 0 {
		row("first write to a fresh 4 KiB page", fmt.Sprintf("%.2f µs", float64(m.PageTouch.Nanoseconds())/1e3))
	}
	return b.String()
}
