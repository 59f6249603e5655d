package suite

import (
	"bufio"
	"fmt"
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
}

// DescribeMachine reads the CPU and memory from /proc (where there is one)
// and measures the fdatasync rate in dataDir for about d.
func DescribeMachine(dataDir string, d time.Duration) (*Machine, error) {
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
	return m, nil
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
	return b.String()
}
