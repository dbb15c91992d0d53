package build

import (
	"log/slog"
	"sync"
	"time"

	"github.com/kiln-build/kiln/internal/snapshot"
)

// snapSync is the build's one snapshot sync, started early (start) or at
// the end (finish), which waits for it either way.
type snapSync struct {
	snap   *snapshot.Snapshotter
	logger *slog.Logger
	once   sync.Once
	done   chan struct{}
	took   time.Duration // the started sync's, once done is closed
}

func newSnapSync(snap *snapshot.Snapshotter, logger *slog.Logger) *snapSync {
	return &snapSync{snap: snap, logger: logger, done: make(chan struct{})}
}

// start begins syncing what the snapshotter published so far, in the
// background; later calls do nothing.
func (s *snapSync) start() {
	s.once.Do(func() {
		go func() {
			defer close(s.done)
			s.took = s.sync()
		}()
	})
}

// finish waits for a started sync, then syncs what was published since
// (after a solve that started over, or when start was never called):
// Snapshotter.Sync does nothing when nothing is left unsynced.
func (s *snapSync) finish() {
	waitStart := time.Now()
	s.start()
	<-s.done
	took := s.took + s.sync()
	s.logger.Debug("synced snapshots", "took", took.Round(100*time.Microsecond),
		"waited", time.Since(waitStart).Round(100*time.Microsecond))
}

func (s *snapSync) sync() time.Duration {
	start := time.Now()
	if err := s.snap.Sync(); err != nil {
		s.logger.Debug("syncing snapshots", "err", err)
	}
	return time.Since(start)
}
