// Package dbhealth tracks whether kkd's database is reachable, so that an
// outage is reported once (a "database unreachable" warning when it starts,
// a "database reachable again" info line with its duration when it ends)
// instead of by every request and background loop that runs into it, and so
// that /healthz and the watchdog can act on it.
//
// A Monitor learns of an outage from Report (every API request and loop
// that gets an error matching ci.ErrUnavailable may call it) and from its own
// probe, a ping every Interval; only the probe declares the database
// reachable again. Monitors are safe for concurrent use.
package dbhealth

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
)

// Pinger is what the Monitor probes: the PostgreSQL store implements it. An
// unreachable database gives an error matching ci.ErrUnavailable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config of a Monitor.
type Config struct {
	// Pinger probes the database; nil: it is always reachable (SQLite).
	Pinger Pinger
	Logger *slog.Logger
	// Interval between probes (default 2 s; while the database is
	// unreachable, every half Interval).
	Interval time.Duration
	// OnRecover, when set, is called (on the probe's goroutine) each time
	// the database is reachable again after an outage.
	OnRecover func(outage time.Duration)
	Now       func() time.Time
}

// State is the database's state as the Monitor last saw it.
type State struct {
	// Up is false during an outage.
	Up bool
	// Since is when the outage started (zero while Up).
	Since time.Time
	// Err is the error that started the outage (nil while Up).
	Err error
	// Recoveries counts the outages that ended; a change tells a reader
	// that an outage happened since it last looked.
	Recoveries uint64
}

// Monitor tracks the database's reachability.
type Monitor struct {
	cfg  Config
	wake chan struct{}
	done chan struct{}

	mu    sync.Mutex
	state State
}

// New returns a monitor that sees the database as reachable.
func New(cfg Config) *Monitor {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Monitor{cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{}), state: State{Up: true}}
}

// Start probes the database until ctx is done. Without a Pinger it only
// closes Done when ctx is done.
func (m *Monitor) Start(ctx context.Context) {
	go func() {
		defer close(m.done)
		if m.cfg.Pinger == nil {
			<-ctx.Done()
			return
		}
		t := time.NewTimer(m.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-m.wake:
			}
			m.Probe(ctx)
			d := m.cfg.Interval
			if !m.State().Up {
				d /= 2
			}
			t.Reset(d)
		}
	}()
}

// Done is closed when the probe loop has stopped.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Probe pings the database once and records the outcome: an error starts an
// outage, a success ends one.
func (m *Monitor) Probe(ctx context.Context) {
	if m.cfg.Pinger == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, max(m.cfg.Interval, time.Second))
	err := m.cfg.Pinger.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		m.down(err)
		return
	}
	m.mu.Lock()
	if m.state.Up {
		m.mu.Unlock()
		return
	}
	outage := m.cfg.Now().Sub(m.state.Since)
	m.state = State{Up: true, Recoveries: m.state.Recoveries + 1}
	m.mu.Unlock()
	m.cfg.Logger.Info("database reachable again", "outage", outage.Round(time.Millisecond))
	if m.cfg.OnRecover != nil {
		m.cfg.OnRecover(outage)
	}
}

// Report tells the monitor about an error a caller got from the store. It
// reports whether err says the database is unreachable (ci.ErrUnavailable):
// then the monitor has logged the outage (once) and the caller need not
// log err itself. It also has the probe run soon.
func (m *Monitor) Report(err error) bool {
	if m == nil || !errors.Is(err, ci.ErrUnavailable) {
		return false
	}
	m.down(err)
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return true
}

func (m *Monitor) down(err error) {
	m.mu.Lock()
	if !m.state.Up {
		m.mu.Unlock()
		return
	}
	m.state = State{Since: m.cfg.Now(), Err: err, Recoveries: m.state.Recoveries}
	m.mu.Unlock()
	m.cfg.Logger.Warn("database unreachable; kkd keeps serving what it can and retries by itself", "err", err)
}

// State returns the database's state as last seen. A nil Monitor sees it
// always up.
func (m *Monitor) State() State {
	if m == nil {
		return State{Up: true}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// Level is the level to log a background loop's failed store call at:
// Debug when the database is unreachable (the Monitor logs the outage once,
// the loop only retries), Error otherwise.
func Level(err error) slog.Level {
	if errors.Is(err, ci.ErrUnavailable) {
		return slog.LevelDebug
	}
	return slog.LevelError
}
