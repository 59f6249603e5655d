package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestScanCompleteWhileKeysChange scans with small COUNTs while another
// client adds and deletes keys all over the key space: every key present
// for the whole scan must be returned.
func TestScanCompleteWhileKeysChange(t *testing.T) {
	for _, count := range []int64{1, 7, 50} {
		t.Run(fmt.Sprint("count=", count), func(t *testing.T) {
			s := testServer(t, nil)
			ctx := ctxT(t)
			c := client(t, s)
			stable := map[string]bool{}
			var pairs []any
			for i := range 300 {
				// Short keys (inline cursors) and long ones sharing prefixes
				// (table cursors).
				var k string
				if i%2 == 0 {
					k = fmt.Sprintf("s%03d", i)
				} else {
					k = fmt.Sprintf("stable:key:%05d", i)
				}
				stable[k] = true
				pairs = append(pairs, k, "v")
			}
			if err := c.MSet(ctx, pairs...).Err(); err != nil {
				t.Fatal(err)
			}

			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := client(t, s)
				rng := rand.New(rand.NewPCG(1, uint64(count)))
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					// Churn keys sort before, between and after stable ones.
					k := fmt.Sprintf("%c%dx", "arsz"[rng.IntN(4)], rng.IntN(1000)) // never a stable key
					if rng.IntN(3) == 0 {
						k = fmt.Sprintf("stable:key:%05d.%d", rng.IntN(300), i)
					}
					var err error
					if rng.IntN(2) == 0 {
						err = w.Set(ctx, k, "x", 0).Err()
					} else {
						err = w.Del(ctx, k).Err()
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()

			seen := map[string]int{}
			var cur uint64
			start := time.Now()
			for calls := 0; ; calls++ {
				keys, next, err := c.Scan(ctx, cur, "", count).Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys {
					seen[k]++
				}
				if next == 0 {
					break
				}
				cur = next
				if calls > 100000 || time.Since(start) > 15*time.Second {
					t.Fatal("SCAN does not end")
				}
			}
			close(stop)
			wg.Wait()
			for k := range stable {
				if seen[k] == 0 {
					t.Errorf("SCAN COUNT %d missed stable key %q", count, k)
				}
			}
		})
	}
}

func TestCursorEncoding(t *testing.T) {
	tab := newCursorTable(4, 1<<20)
	for _, k := range [][]byte{{0}, []byte("a"), []byte("abcdefg"), {0xff, 0xff, 0, 0, 0, 0, 0}} {
		c := tab.encode(k)
		if c == 0 {
			t.Fatalf("cursor of %q is 0", k)
		}
		got, ok := tab.decode(c)
		if !ok || !bytes.Equal(got, k) {
			t.Fatalf("decode(encode(%q)) = %q, %v", k, got, ok)
		}
	}
	if k, ok := tab.decode(0); !ok || k != nil {
		t.Fatalf("decode(0) = %q, %v", k, ok)
	}
	// Long keys go through the table; once evicted, the cursor resumes at
	// the key's 4-byte prefix, a lower bound: nothing is skipped.
	long := []byte("longkey-0001")
	c := tab.encode(long)
	if got, _ := tab.decode(c); !bytes.Equal(got, long) {
		t.Fatalf("decode = %q", got)
	}
	for i := range 10 {
		tab.encode([]byte(fmt.Sprintf("otherkey-%04d", i)))
	}
	got, ok := tab.decode(c)
	if !ok || !bytes.Equal(got, []byte("long")) {
		t.Fatalf("evicted cursor decodes to %q, %v; want the prefix", got, ok)
	}
	if bytes.Compare(got, long) > 0 {
		t.Fatal("fallback is not a lower bound")
	}
	// Bad inline lengths are invalid.
	if _, ok := tab.decode(1<<63 | 9<<56); ok {
		t.Fatal("inline cursor of length 9 accepted")
	}
	// The byte bound evicts too.
	small := newCursorTable(100, 30)
	c1 := small.encode([]byte("0123456789abcdef"))
	small.encode([]byte("fedcba9876543210"))
	if got, _ := small.decode(c1); !bytes.Equal(got, []byte("0123")) {
		t.Fatalf("byte bound: decode = %q", got)
	}
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true},
		{"*", "abc", true},
		{"a*", "abc", true},
		{"a*", "bac", false},
		{"*c", "abc", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a[bc]d", "acd", true},
		{"a[^bc]d", "acd", false},
		{"a[^bc]d", "aed", true},
		{"a[a-c]d", "abd", true},
		{"a[c-a]d", "abd", true},
		{"a[a-c]d", "aed", false},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"h*llo", "heeeello", true},
		{"h*l*o", "hello", true},
		{"*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"[abc", "a", true},
		{"user:*", "user:1", true},
		// "[a-]" is a range from 'a' to ']' (Redis 7.0 reads any x-y as a
		// range), and the class then runs on to the next ']' or the end.
		{"[a-]", "^", true},
		{"[a-]", "-", false},
		{"[k[a-]^", "]", true},
		{"[a-]x]", "_", true},
		{"[a-]x]", "_x]", false},
	}
	for _, tc := range cases {
		if got := globMatch([]byte(tc.pat), []byte(tc.s)); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pat, tc.s, got, tc.want)
		}
	}
	if p := literalPrefix([]byte(`us\*er:*x`)); string(p) != "us*er:" {
		t.Errorf("literalPrefix = %q", p)
	}
	if e := prefixEnd([]byte("ab\xff")); string(e) != "ac" {
		t.Errorf("prefixEnd = %q", e)
	}
	if e := prefixEnd([]byte("\xff\xff")); e != nil {
		t.Errorf("prefixEnd(ff ff) = %q", e)
	}
}
