package processor_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

func TestStartRejectsBadConfig(t *testing.T) {
	l := memlog.New(nil)
	st := func() *processor.State { return processor.NewState(runnerHeader, cowtree.New(nil), 0) }
	on := func(processor.Event) {}
	for name, cfg := range map[string]processor.Config{
		"no log":             {State: st(), OnEvent: on},
		"no state":           {Log: l, OnEvent: on},
		"no OnEvent":         {Log: l, State: st()},
		"negative hole":      {Log: l, State: st(), OnEvent: on, HoleTimeout: -time.Second},
		"negative poll":      {Log: l, State: st(), OnEvent: on, PollInterval: -1},
		"negative readahead": {Log: l, State: st(), OnEvent: on, ReadAhead: -1},
	} {
		if r, err := processor.Start(cfg); !errors.Is(err, processor.ErrInvalidConfig) {
			if r != nil {
				r.Stop()
			}
			t.Errorf("%s: Start = %v, want ErrInvalidConfig", name, err)
		}
	}
}
