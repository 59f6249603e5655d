package main

import "testing"

// TestGCPolicy: --gc-percent and --gc-memory-limit (flags or CRUZD_*
// variables) give the collector's target and soft limit the daemon sets;
// the auto limit follows --cache-bytes and --max-unflushed-bytes; GOGC and
// GOMEMLIMIT in the environment win over both; bad limits are refused.
func TestGCPolicy(t *testing.T) {
	const mib = 1 << 20
	parse := parseServeConfig
	type policy struct {
		percent    int
		setPercent bool
		limit      int64
		setLimit   bool
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string // CRUZD_* and the process's GOGC, GOMEMLIMIT
		args    []string
		want    policy
		wantErr bool
	}{
		// The defaults: cache 256 MiB, unflushed 64 MiB.
		{name: "defaults", want: policy{400, true, 3*(256+64)*mib + 256*mib, true}},
		{name: "flags", args: []string{"--gc-percent", "150", "--gc-memory-limit", "2GiB"}, want: policy{150, true, 2048 * mib, true}},
		{name: "auto follows the cache", args: []string{"--cache-bytes", "1GiB", "--max-unflushed-bytes", "128MiB", "--gc-memory-limit", "auto"},
			want: policy{400, true, 3*(1024+128)*mib + 256*mib, true}},
		{name: "off", args: []string{"--gc-memory-limit", "off"}, want: policy{400, true, 0, false}},
		{name: "variables", env: map[string]string{"CRUZD_GC_PERCENT": "800", "CRUZD_GC_MEMORY_LIMIT": "512MiB"}, want: policy{800, true, 512 * mib, true}},
		{name: "GOGC and GOMEMLIMIT win", env: map[string]string{"GOGC": "100", "GOMEMLIMIT": "1GiB"}, args: []string{"--gc-percent", "300", "--gc-memory-limit", "3GiB"},
			want: policy{300, false, 0, false}},
		{name: "zero limit", args: []string{"--gc-memory-limit", "0"}, wantErr: true},
		{name: "negative limit", args: []string{"--gc-memory-limit", "-5"}, wantErr: true},
		{name: "word", args: []string{"--gc-memory-limit", "lots"}, wantErr: true},
		{name: "percent too low", args: []string{"--gc-percent", "5"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parse(tc.env, tc.args...)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("%q accepted", tc.args)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got policy
			got.percent, got.setPercent, got.limit, got.setLimit = gcPolicy(&cfg, func(k string) string { return tc.env[k] })
			if got != tc.want {
				t.Fatalf("policy %+v, want %+v", got, tc.want)
			}
		})
	}
}
