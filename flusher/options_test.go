package flusher

import (
	"errors"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log/memlog"
)

func TestNewRejectsBadOptions(t *testing.T) {
	l := memlog.New(nil)
	for name, o := range map[string]Options{
		"no log":             {},
		"negative workers":   {Log: l, Workers: -1},
		"negative unflushed": {Log: l, MaxUnflushedBytes: -1},
		"negative cache":     {Log: l, CacheBytes: -1},
		"negative takeover":  {Log: l, TakeoverDelay: -time.Second},
		"negative index":     {Log: l, IndexEntries: -1},
		"negative hole":      {Log: l, HoleTimeout: -time.Second},
		"unknown policy":     {Log: l, Policy: PolicyOriginator + 1},
		"negative duty":      {Log: l, ImageDuty: -0.5},
		"duty over 1":        {Log: l, ImageDuty: 2},
	} {
		if f, err := New(o, 0); !errors.Is(err, ErrInvalidOptions) {
			if f != nil {
				f.Stop()
			}
			t.Errorf("%s: New = %v, want ErrInvalidOptions", name, err)
		}
	}
}
