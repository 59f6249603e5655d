package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// infoFields parses the "name:value" lines of an INFO reply.
func infoFields(t *testing.T, info string) map[string]string {
	t.Helper()
	f := map[string]string{}
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			f[k] = v
		}
	}
	return f
}

// TestInfoLogCostFields checks the INFO fields bench/resp.sh reads around
// each test to report what cruzd's writes cost its log: commits and
// afterimage_bytes in "INFO cruzdb", checkpoint_bytes, auto_checkpoints and
// checkpoint_commit_waits in "INFO checkpoint". Pipelined SETs on the
// embedded seglog log with small automatic-checkpoint thresholds must move
// the first four (commits by fewer than the SETs: pipelined SETs commit
// together), and the last must be a count.
func TestInfoLogCostFields(t *testing.T) {
	s := testServer(t, func(c *config) {
		c.DataDir = t.TempDir()
		c.Checkpoint.MinLogBytes = 16 << 10
		c.Checkpoint.LogRatio = 0.25
	})
	ctx := ctxT(t)
	c := client(t, s)
	read := func() map[string]string {
		t.Helper()
		f := infoFields(t, must[string](t, c.Info(ctx, "cruzdb")))
		for k, v := range infoFields(t, must[string](t, c.Info(ctx, "checkpoint"))) {
			f[k] = v
		}
		return f
	}
	num := func(f map[string]string, k string) uint64 {
		t.Helper()
		v, ok := f[k]
		if !ok {
			t.Fatalf("INFO cruzdb / checkpoint lack %s: %v", k, f)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s:%s is not a count: %v", k, v, err)
		}
		return n
	}
	before := read()
	for _, k := range []string{"commits", "afterimage_bytes", "checkpoint_bytes", "auto_checkpoints", "checkpoint_commit_waits"} {
		num(before, k)
	}

	const rounds, per = 20, 50
	value := strings.Repeat("v", 100)
	deadline := time.Now().Add(20 * time.Second)
	sets := 0
	for {
		for r := range rounds {
			p := c.Pipeline()
			for i := range per {
				p.Set(ctx, fmt.Sprintf("key:%d", (sets+r*per+i)%5000), value, 0)
			}
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		sets += rounds * per
		after := read()
		if num(after, "auto_checkpoints") > num(before, "auto_checkpoints") && num(after, "checkpoint_bytes") > num(before, "checkpoint_bytes") &&
			num(after, "afterimage_bytes") > num(before, "afterimage_bytes") {
			commits := num(after, "commits") - num(before, "commits")
			if commits == 0 || commits >= uint64(sets) {
				t.Fatalf("%d pipelined SETs: commits rose by %d", sets, commits)
			}
			num(after, "checkpoint_commit_waits")
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d SETs no automatic checkpoint or afterimage bytes in INFO: before %v, after %v", sets, before, after)
		}
	}
}

// TestInfoIntentionsAppliedEarly: on the embedded seglog the daemon applies
// a group commit's intentions while the log syncs them (cruzdb's early
// application, which its metrics wrapper once hid): with pipelines from
// several clients at once, combined transactions of over 4 KiB come, and
// INFO's intentions_applied_early rises above zero.
func TestInfoIntentionsAppliedEarly(t *testing.T) {
	s := testServer(t, func(c *config) { c.DataDir = t.TempDir() })
	infoAppliedEarly(t, s, true)
}

// TestApplyAfterSyncFlag: with --apply-after-sync the daemon applies
// nothing early, under the same pipelines that make it do so without.
func TestApplyAfterSyncFlag(t *testing.T) {
	s := testServer(t, func(c *config) { c.DataDir = t.TempDir(); c.ApplyAfterSync = true })
	infoAppliedEarly(t, s, false)
}

// infoAppliedEarly sends rounds of concurrent pipelines to s: with want,
// until INFO's intentions_applied_early rises above zero (failing after
// 20 s); without, 20 rounds, after which it must still be zero.
func infoAppliedEarly(t *testing.T, s *server, want bool) {
	t.Helper()
	ctx := ctxT(t)
	early := func() uint64 {
		t.Helper()
		f := infoFields(t, must[string](t, client(t, s).Info(ctx, "cruzdb")))
		n, err := strconv.ParseUint(f["intentions_applied_early"], 10, 64)
		if err != nil {
			t.Fatalf("intentions_applied_early: %q: %v", f["intentions_applied_early"], err)
		}
		return n
	}
	if n := early(); n != 0 {
		t.Fatalf("intentions_applied_early %d before any write", n)
	}
	// 100-byte values: a combined transaction of a round's pipelines is
	// over 4 KiB, which is applied early even alone in its group.
	const clients, per = 8, 20
	value := strings.Repeat("v", 100)
	cs := make([]*redis.Client, clients)
	for i := range cs {
		cs[i] = client(t, s)
	}
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; ; round++ {
		if n := early(); n > 0 || (!want && round == 20) {
			if (n > 0) != want {
				t.Fatalf("%d intentions applied early after %d rounds of %d pipelines", n, round, clients)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no intention applied early after %d rounds of %d pipelines", round, clients)
		}
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := c.Pipeline()
				for j := range per {
					p.Set(ctx, fmt.Sprintf("k%d:%d:%d", round, i, j), value, 0)
				}
				if _, err := p.Exec(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
}
