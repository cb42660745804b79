package watchdog_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/dbhealth"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/watchdog"
)

// outageStore fails the watchdog's store calls with ci.ErrUnavailable while
// down is set, as the PostgreSQL store does while the server is stopped.
type outageStore struct {
	store.Store
	down atomic.Bool
}

func (s *outageStore) err() error {
	if s.down.Load() {
		return s.errDown()
	}
	return nil
}

func (s *outageStore) Ping(context.Context) error { return s.err() }

func (s *outageStore) ListExpiredJobs(ctx context.Context, now time.Time) ([]ci.Job, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.ListExpiredJobs(ctx, now)
}

func (s *outageStore) ListActiveJobs(ctx context.Context) ([]ci.Job, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.ListActiveJobs(ctx)
}

func (s *outageStore) RenewLease(ctx context.Context, jobID int64, attempt int, until time.Time) (ci.Job, error) {
	if err := s.err(); err != nil {
		return ci.Job{}, err
	}
	return s.Store.RenewLease(ctx, jobID, attempt, until)
}

// TestOutageDoesNotRequeue: leases that expired while the database was
// unreachable (the agents' heartbeats could not be recorded) are extended by
// OutageGrace once it is back, instead of their jobs being requeued; a job
// whose agent stays silent after that is requeued as usual.
func TestOutageDoesNotRequeue(t *testing.T) {
	t.Parallel()
	const grace = 30 * time.Second // ends before the job's timeout (120 s + TimeoutGrace)
	tests := []struct {
		name   string
		health bool // the watchdog has a health monitor
		// during starts the outage as the watchdog or the monitor sees it.
		during func(t *testing.T, st *outageStore, mon *dbhealth.Monitor)
	}{
		{"seen by the watchdog's checks, no monitor", false, func(t *testing.T, st *outageStore, mon *dbhealth.Monitor) {
			st.down.Store(true)
		}},
		{"seen by the watchdog's checks and the monitor", true, func(t *testing.T, st *outageStore, mon *dbhealth.Monitor) {
			st.down.Store(true)
		}},
		{"seen only by the monitor (an API request ran into it)", true, func(t *testing.T, st *outageStore, mon *dbhealth.Monitor) {
			require.True(t, mon.Report(st.errDown()))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 3)
			st := &outageStore{Store: f.st}
			var mon *dbhealth.Monitor
			if tc.health {
				mon = dbhealth.New(dbhealth.Config{Pinger: st, Logger: slog.New(slog.DiscardHandler), Now: f.clock.Now})
			}
			wd := watchdog.New(watchdog.Config{
				Store: st, Engine: f.eng, Dispatcher: f.disp, Logger: slog.New(slog.DiscardHandler), Now: f.clock.Now,
				OutageGrace: grace, Health: mon, CancelGrace: cancelGrace, TimeoutGrace: timeoutGrace,
			})
			j := f.start(f.jobs[0].ID)
			wd.Check(f.ctx)

			tc.during(t, st, mon)
			f.expire(j.ID) // the heartbeats fail while the database is down
			wd.Check(f.ctx)
			require.Equal(t, ci.JobRunning, f.job(j.ID).State)
			if tc.health {
				require.False(t, mon.State().Up)
			}

			st.down.Store(false)
			if tc.health {
				wd.Check(f.ctx)
				require.Equal(t, ci.JobRunning, f.job(j.ID).State, "not judged while the monitor sees the outage")
				mon.Probe(f.ctx)
				require.True(t, mon.State().Up)
			}
			f.clock.Set(f.clock.Now().Add(10 * time.Second))
			wd.Check(f.ctx)
			got := f.job(j.ID)
			require.Equal(t, ci.JobRunning, got.State, "no requeue for heartbeats lost in the outage")
			require.Equal(t, 1, got.Attempt)
			require.NotNil(t, got.LeaseUntil)
			require.WithinDuration(t, f.clock.Now().Add(grace), *got.LeaseUntil, time.Second, "extended by the grace from the recovery")

			f.clock.Set(got.LeaseUntil.Add(-time.Second))
			wd.Check(f.ctx)
			require.Equal(t, ci.JobRunning, f.job(j.ID).State, "one extension per outage")

			// The agent never comes back: it loses the job after the grace.
			f.expire(j.ID)
			wd.Check(f.ctx)
			got = f.job(j.ID)
			require.Equal(t, ci.JobQueued, got.State, "a silent agent still loses its job")
		})
	}
}

func (s *outageStore) errDown() error {
	return fmt.Errorf("database unreachable: test outage: %w", ci.ErrUnavailable)
}
