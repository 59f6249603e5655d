package seglog

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cruzlog/cruzdb/log"
)

// CopyTo writes a copy of the log's durable state into the directory dst,
// which must be missing or empty: the log as it stands between two group
// commits, as a crash at that moment would leave it. Group commits wait
// while it copies; reads do not. dst opens with Open like any log.
func (l *Log) CopyTo(dst string) error {
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	l.segMu.RLock()
	closed := l.closed
	segs := append([]*segment(nil), l.segs...)
	ends := make([]int64, len(segs))
	for i, s := range segs {
		ends[i] = -1 // the whole file
		if !s.sealed {
			ends[i] = int64(s.end)
		}
	}
	l.segMu.RUnlock()
	if closed || l.q.IsShut() {
		return fmt.Errorf("seglog: copy to %s: %w", dst, log.ErrClosed)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("seglog: copy to %s: %w", dst, err)
	}
	if ents, err := os.ReadDir(dst); err != nil || len(ents) > 0 {
		if err == nil {
			err = fmt.Errorf("directory not empty")
		}
		return fmt.Errorf("seglog: copy to %s: %w", dst, err)
	}
	meta, err := os.ReadFile(filepath.Join(l.dir, metaName))
	if err != nil {
		return fmt.Errorf("seglog: copy to %s: %w", dst, err)
	}
	if err := writeFileAtomic(dst, metaName, meta, l.opts.FileMode, l.opts.NoSync); err != nil {
		return fmt.Errorf("seglog: copy to %s: %w", dst, err)
	}
	for i, s := range segs {
		if err := l.copySegment(s, ends[i], filepath.Join(dst, filepath.Base(s.path))); err != nil {
			return fmt.Errorf("seglog: copy to %s: %w", dst, err)
		}
	}
	if l.opts.NoSync {
		return nil
	}
	if err := syncDir(dst); err != nil {
		return fmt.Errorf("seglog: copy to %s: %w", dst, err)
	}
	return nil
}

// copySegment copies bytes [0, end) of s (all of it if end < 0) to path.
func (l *Log) copySegment(s *segment, end int64, path string) error {
	s.fileMu.RLock()
	defer s.fileMu.RUnlock()
	if end < 0 {
		fi, err := s.f.Stat()
		if err != nil {
			return err
		}
		end = fi.Size()
	}
	out, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, l.opts.FileMode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.NewSectionReader(s.f, 0, end))
	if err == nil && !l.opts.NoSync {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
