package seglog

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkAppendWritten is durable appends by one appender into a growing
// log (never trimmed, fdatasync on), of 200-byte entries, of 100 KB entries,
// and of a 100 KB entry followed by three of 200 bytes (a large group and
// the small ones after it), with the bytes the process wrote to storage
// (/proc/self/io write_bytes, Linux) per byte appended, and the median
// latency of the small appends (all of them for 200-byte entries).
func BenchmarkAppendWritten(b *testing.B) {
	type pattern struct {
		name  string
		sizes []int
		opts  *Options
	}
	for _, p := range []pattern{
		{"200B", []int{200}, nil},
		{"100KB", []int{100 << 10}, nil},
		{"100KB+3x200B", []int{100 << 10, 200, 200, 200}, nil},
		{"100KB-NoZeroFill", []int{100 << 10}, &Options{NoZeroFill: true}},
	} {
		b.Run(p.name, func(b *testing.B) {
			l := mustOpenB(b, p.opts)
			defer l.Close()
			bufs := make([][]byte, len(p.sizes))
			for i, n := range p.sizes {
				bufs[i] = bytes.Repeat([]byte{byte('a' + i)}, n)
			}
			var small []time.Duration
			appended := 0
			w0, okW := writeBytes()
			b.ResetTimer()
			for i := range b.N {
				data := bufs[i%len(bufs)]
				t := time.Now()
				if _, err := l.Append(context.Background(), data); err != nil {
					b.Fatal(err)
				}
				if len(data) <= smallEntry {
					small = append(small, time.Since(t))
				}
				appended += len(data)
			}
			b.StopTimer()
			w1, _ := writeBytes()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			if okW {
				b.ReportMetric(float64(w1-w0)/float64(appended), "written/appended")
			}
			if len(small) > 0 {
				slices.Sort(small)
				b.ReportMetric(float64(small[len(small)/2].Microseconds()), "small-p50-µs")
			}
			st := l.Stats()
			b.ReportMetric(float64(st.Unprepared)/float64(max(st.Groups, 1)), "unprepared/group")
		})
	}
}

// writeBytes returns the bytes this process has caused to be written to
// storage (/proc/self/io), if the system says.
func writeBytes() (int64, bool) {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
