package suite

import (
	"bytes"
	"context"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestExperimentsTiny runs every experiment in tiny mode and checks that it
// printed a Markdown table and wrote a CSV with a header and rows and an
// SVG, so that the suite cannot rot silently. It asserts no timing.
func TestExperimentsTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every experiment")
	}
	for _, x := range Experiments {
		t.Run(x.Name, func(t *testing.T) {
			out := t.TempDir()
			var stdout bytes.Buffer
			env, err := NewEnv(Config{Tiny: true, Out: out, DataDir: t.TempDir(), Runs: 1, Seed: 7,
				Stdout: &stdout, Progress: testWriter{t}, MainDir: "../.."})
			if err != nil {
				t.Fatal(err)
			}
			if err := env.Run(x.Name); err != nil {
				t.Fatal(err)
			}
			md := stdout.String()
			if !strings.Contains(md, "### Machine") || !strings.Contains(md, "### "+x.Name) {
				t.Errorf("stdout lacks the machine or the %s table:\n%s", x.Name, md)
			}
			if !strings.Contains(md, "|---|") {
				t.Errorf("stdout has no Markdown table:\n%s", md)
			}
			f, err := os.Open(filepath.Join(out, x.Name+".csv"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			recs, err := csv.NewReader(f).ReadAll()
			if err != nil {
				t.Fatalf("%s.csv: %v", x.Name, err)
			}
			if len(recs) < 2 {
				t.Errorf("%s.csv has %d records, want a header and rows", x.Name, len(recs))
			}
			svg, err := os.ReadFile(filepath.Join(out, x.Name+".svg"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(svg, []byte("<svg")) {
				t.Errorf("%s.svg is not an SVG", x.Name)
			}
			if _, err := os.Stat(filepath.Join(out, "machine.md")); err != nil {
				t.Error(err)
			}
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestEntryKinds checks the envelope type byte the suite reads against the
// entries cruzdb really writes: header, intentions and afterimages.
func TestEntryKinds(t *testing.T) {
	ctx := context.Background()
	ml := memlog.New(nil)
	defer ml.Close()
	db, err := cruzdb.Open("", &cruzdb.Options{Log: ml})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := db.Update(ctx, func(tx *cruzdb.Txn) error { return tx.Put(makeKey(uint64(i)), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	tail, err := ml.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n [numKinds]int
	for p := log.Position(0); p < tail; p++ {
		b, err := ml.Read(ctx, p)
		if err != nil {
			continue
		}
		k := entryKind(b)
		if p == 0 && k != kindHeader {
			t.Errorf("position 0 is %s, want header", kindNames[k])
		}
		n[k]++
	}
	// Close may add one sealing afterimage of the newest delta.
	if n[kindIntention] != 5 || n[kindAfterimage] < 5 || n[kindAfterimage] > 6 || n[kindOther] != 0 {
		t.Errorf("entry kinds %v (%v), want 1 header, 5 intentions, 5 or 6 afterimages", n, kindNames)
	}
}

// TestZipfian checks the generator's distribution: rank 0 should come up
// with probability 1/zeta(n, theta), and ranks stay in range.
func TestZipfian(t *testing.T) {
	const n, draws = 1000, 200_000
	z := newZipfian(n, zipfTheta)
	r := rand.New(rand.NewPCG(1, 2))
	var zero, one int
	for range draws {
		k := z.rank(r)
		if k >= n {
			t.Fatalf("rank %d out of range", k)
		}
		switch k {
		case 0:
			zero++
		case 1:
			one++
		}
		if s := z.next(r); s >= n {
			t.Fatalf("record %d out of range", s)
		}
	}
	p0 := 1 / z.zetan
	p1 := 1 / math.Pow(2, zipfTheta) / z.zetan
	for _, c := range []struct {
		got  int
		want float64
	}{{zero, p0}, {one, p1}} {
		f := float64(c.got) / draws
		if math.Abs(f-c.want) > 0.1*c.want {
			t.Errorf("frequency %.4f, want %.4f ± 10%%", f, c.want)
		}
	}
}

func TestTableCSVAndMarkdown(t *testing.T) {
	tb := &Table{Name: "x", Title: "x", Columns: []string{"name", "rate/s", "n"}}
	tb.Add("a", Sample{Values: []float64{1, 2, 3}}, 1234567)
	tb.Add("b", 2.5, nil)
	recs := tb.csvRecords()
	if got := strings.Join(recs[0], ","); got != "name,rate_s,rate_s_min,rate_s_max,n" {
		t.Errorf("header %q", got)
	}
	if got := strings.Join(recs[1], ","); got != "a,2,1,3,1234567" {
		t.Errorf("row %q", got)
	}
	if got := strings.Join(recs[2], ","); got != "b,2.5,,," {
		t.Errorf("row %q", got)
	}
	md := tb.Markdown()
	if !strings.Contains(md, "| a | 2.00 ±50% | 1,234,567 |") {
		t.Errorf("markdown:\n%s", md)
	}
	if k := makeKey(42); len(k) != keySize || string(k) != "k000000000000042" {
		t.Errorf("key %q", k)
	}
}

func TestDescribeMachine(t *testing.T) {
	m, err := DescribeMachine(t.TempDir(), 10*time.Millisecond, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.FsyncPerSec <= 0 || m.LoadLatency <= 0 || m.MemSet != 1<<20 {
		t.Fatalf("fsync %v/s, load latency %v over %d bytes", m.FsyncPerSec, m.LoadLatency, m.MemSet)
	}
	if runtime.GOOS == "linux" && m.PageTouch <= 0 {
		t.Fatalf("page touch not measured on linux")
	}
	md := m.Markdown()
	for _, want := range []string{"fdatasync", "dependent load, random line of 1 MiB"} {
		if !strings.Contains(md, want) {
			t.Errorf("machine table lacks %q:\n%s", want, md)
		}
	}
}
