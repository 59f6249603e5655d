package suite

import (
	"testing"
	"time"
)

// TestSplitStretches checks how the inside-vs-outside run sorts commits:
// a checkpoint's outside is the stretch before it and the one after it,
// the stretch between two checkpoints is after the first and before the
// second, and commits before the first stretch (the warm-up) or after the
// last count nowhere.
func TestSplitStretches(t *testing.T) {
	s := time.Second
	// warm-up until 10 s; outside 10-13; checkpoint 1 13-15; outside
	// 15-17; checkpoint 2 17-20; outside 20-23.
	bounds := []time.Duration{10 * s, 13 * s, 15 * s, 17 * s, 20 * s, 23 * s}
	var commits []timedCommit
	add := func(end time.Duration, n int) {
		for range n {
			commits = append(commits, timedCommit{end: end, took: time.Millisecond})
		}
	}
	add(5*s, 100) // warm-up: nowhere
	add(10*s, 3)  // the first stretch's start: before checkpoint 1
	add(12*s, 6)  // before checkpoint 1
	add(13*s, 2)  // checkpoint 1's start: inside it
	add(14*s, 8)  // inside checkpoint 1
	add(15*s, 1)  // checkpoint 1's end: after it, before checkpoint 2
	add(16*s, 4)  // between: after 1, before 2
	add(18*s, 9)  // inside checkpoint 2
	add(22*s, 5)  // after checkpoint 2
	add(23*s, 50) // the end: nowhere
	add(30*s, 50) // later: nowhere
	got := splitStretches(commits, bounds)
	if len(got) != 2 {
		t.Fatalf("%d checkpoints, want 2", len(got))
	}
	want := []struct {
		before, in, after    int
		beforeS, inS, afterS float64
	}{
		{9, 10, 5, 3, 2, 2},
		{5, 9, 5, 2, 3, 3},
	}
	for i, w := range want {
		g := got[i]
		if len(g.before.ms) != w.before || len(g.in.ms) != w.in || len(g.after.ms) != w.after {
			t.Errorf("checkpoint %d: %d before, %d inside, %d after; want %d, %d, %d", i+1,
				len(g.before.ms), len(g.in.ms), len(g.after.ms), w.before, w.in, w.after)
		}
		if g.before.secs != w.beforeS || g.in.secs != w.inS || g.after.secs != w.afterS {
			t.Errorf("checkpoint %d: stretches of %v, %v, %v s; want %v, %v, %v", i+1,
				g.before.secs, g.in.secs, g.after.secs, w.beforeS, w.inS, w.afterS)
		}
	}
	if r := got[0].in.rate(); r != 5 {
		t.Errorf("checkpoint 1 rate %v, want 5 commits/s", r)
	}
	if got := splitStretches(commits, bounds[:2]); got != nil {
		t.Errorf("no checkpoint: %d stretches", len(got))
	}
}
