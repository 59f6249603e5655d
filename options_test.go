package cruzdb

import (
	"errors"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

func TestOptionsDefaultedOnce(t *testing.T) {
	o, err := (&Options{Log: memlog.New(nil), HoleTimeout: 3 * time.Second}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultOptions()
	if o.HoleTimeout != 3*time.Second || o.PollInterval != processor.DefaultPollInterval ||
		o.FlushWorkers != flusher.DefaultWorkers() || o.CacheBytes != d.CacheBytes ||
		o.TakeoverDelay != flusher.DefaultTakeoverDelay || o.CloseFlushTimeout != d.CloseFlushTimeout || o.Logger == nil {
		t.Fatalf("defaults not filled in: %+v", o)
	}
	if o.CheckpointDuty != flusher.DefaultImageDuty {
		t.Fatalf("CheckpointDuty = %v, want %v", o.CheckpointDuty, flusher.DefaultImageDuty)
	}
	if o.MaxConflictRetries != 0 {
		t.Fatalf("MaxConflictRetries = %d, want 0 (retry until the context ends)", o.MaxConflictRetries)
	}
	for name, bad := range map[string]Options{
		"TakeoverDelay":     {TakeoverDelay: -1},
		"CloseFlushTimeout": {CloseFlushTimeout: -1},
		"FlushPolicy":       {FlushPolicy: flusher.PolicyOriginator + 1},
		"PollInterval":      {PollInterval: -1},
		"CheckpointDuty<0":  {CheckpointDuty: -0.1},
		"CheckpointDuty>1":  {CheckpointDuty: 1.5},
	} {
		if _, err := bad.withDefaults(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: withDefaults = %v, want ErrInvalidOptions", name, err)
		}
	}
}
