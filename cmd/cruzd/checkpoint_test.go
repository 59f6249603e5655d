package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/internal/testutil"
)

// TestBgRewriteAOFCheckpoints: BGREWRITEAOF answers as Redis does and
// starts a checkpoint; INFO's Checkpoint section and /metrics show it, and
// the log is trimmed below it.
func TestBgRewriteAOFCheckpoints(t *testing.T) {
	dir := t.TempDir()
	s := testServer(t, func(c *config) { c.DataDir = dir }) // the embedded log
	ctx := ctxT(t)
	c := client(t, s)
	for i := range 50 {
		if err := c.Set(ctx, "k"+strconv.Itoa(i%10), strconv.Itoa(i), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := c.Do(ctx, "BGREWRITEAOF").Text(); err != nil || got != "Background append only file rewriting started" {
		t.Fatalf("BGREWRITEAOF: %q %v", got, err)
	}
	field := func(info, name string) int64 {
		m := regexp.MustCompile(`(?m)^` + name + `:(-?\d+)\r?$`).FindStringSubmatch(info)
		if m == nil {
			t.Fatalf("INFO lacks %s:\n%s", name, info)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	var info string
	if !testutil.Poll(testutil.WaitLong, func() bool {
		var err error
		if info, err = c.Info(ctx, "checkpoint").Result(); err != nil {
			t.Fatal(err)
		}
		return field(info, "checkpoints") >= 1 && field(info, "log_trimmed_below") > 0
	}) {
		t.Fatalf("no checkpoint after BGREWRITEAOF:\n%s", info)
	}
	if !strings.Contains(info, "# Checkpoint") || field(info, "last_checkpoint_position") != field(info, "log_trimmed_below") || field(info, "log_live_bytes") <= 0 {
		t.Fatalf("INFO checkpoint:\n%s", info)
	}
	_, body := httpGet(t, "http://"+s.AdminAddr().String()+"/metrics")
	for _, want := range []string{
		"cruzdb_checkpoint_prepare_seconds ",
		"cruzdb_checkpoint_authority_seconds ",
		"cruzdb_checkpoints_aborted_total 0",
		"cruzdb_log_trimmed_below " + strconv.FormatInt(field(info, "log_trimmed_below"), 10),
		"cruzdb_log_live_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The data are all there.
	for i := 40; i < 50; i++ {
		if got, err := c.Get(ctx, "k"+strconv.Itoa(i%10)).Result(); err != nil || got != strconv.Itoa(i) {
			t.Fatalf("k%d = %q %v", i%10, got, err)
		}
	}
}
