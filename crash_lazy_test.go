package cruzdb

import (
	"context"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// AppendLazy goes through the hooks as the append of its entry and, around
// it, as op "lazy" (seglog's lazy appends carry the afterimages that ride
// with intentions: see log/piggyback).
func (h *segHookLog) AppendLazy(ctx context.Context, data []byte, within time.Duration) (log.Position, bool, error) {
	typ := entryType(data)
	h.call("append", typ, "before")
	h.call("lazy", 0, "before")
	p, shared, err := h.Log.AppendLazy(ctx, data, within)
	if err == nil {
		h.call("lazy", 0, "after")
		h.call("append", typ, "after")
	}
	return p, shared, err
}
