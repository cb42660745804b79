package daemon

import (
	"log/slog"
	"time"

	"github.com/kraken-go/kk/pkg/dbhealth"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/store"
)

// newHealth returns the monitor of the database's reachability: it probes
// stores that can be pinged (PostgreSQL; SQLite is a file and always there)
// and, when the database is back after an outage, has the dispatcher match
// queued jobs and the archiver redo the archives that failed meanwhile.
func newHealth(st store.Store, log *slog.Logger, disp *scheduler.Dispatcher, archiver *logs.Archiver) *dbhealth.Monitor {
	cfg := dbhealth.Config{
		Logger: log.With("component", "database"),
		OnRecover: func(time.Duration) {
			disp.Kick()
			archiver.Resweep()
		},
	}
	if p, ok := st.(dbhealth.Pinger); ok {
		cfg.Pinger = p
	}
	return dbhealth.New(cfg)
}
