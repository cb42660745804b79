package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/api"
)

// serverFailMemory is how long a server that failed counts as failing
// "recently": while another server has not failed within it, a request that
// failed on one server goes to the next one at once instead of backing off.
const serverFailMemory = 10 * time.Second

// ParseServerURLs splits a list of kkd addresses separated by commas (the
// -s flag and KRAKEN_SERVER_ADDR; several addresses are kkd replicas on one
// database) and normalizes each with NormalizeServerURL. Empty entries are
// ignored and duplicates dropped; an invalid entry is named in the error.
func ParseServerURLs(list ...string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, l := range list {
		for s := range strings.SplitSeq(l, ",") {
			if strings.TrimSpace(s) == "" {
				continue
			}
			u, err := NormalizeServerURL(s)
			if err != nil {
				return nil, err
			}
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("server URL is empty: pass -s URL[,URL...] or set KRAKEN_SERVER_ADDR")
	}
	return out, nil
}

// serverSet is the agent's choice among kkd replicas, shared by every
// request of the agent (work poll, heartbeat, job writes, tools' transfers,
// credential refresh, self-upgrade): all go to the current server. The
// replicas share one database, so any of them answers any call.
//
// Policy (round robin on failure):
//   - A transport error (connection refused or reset, timeout, DNS) or a
//     502/503/504 from the current server makes the next server current and
//     marks the failed one as failing since now.
//   - The caller may retry at once when the new current server has not failed
//     within serverFailMemory; when every server failed in a row it backs off
//     (and each retry still moves on to the next server).
//   - Any other answer, 4xx included (409 stale_attempt, 401, 404), is the
//     server's real answer: it clears the server's failure and never fails
//     over.
//
// It is safe for concurrent use. A failure of a server that is no longer the
// current one (another request failed over already) does not move the
// choice again.
type serverSet struct {
	urls  []string // normalized base URLs (without the API prefix)
	names []string // urls with any password redacted, for logs
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	cur      int
	failedAt []time.Time // zero: no failure since the last answer
}

func newServerSet(urls []string, log *slog.Logger) *serverSet {
	names := make([]string, len(urls))
	for i, u := range urls {
		names[i] = u
		if pu, err := url.Parse(u); err == nil {
			names[i] = pu.Redacted()
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &serverSet{urls: urls, names: names, log: log, now: time.Now, failedAt: make([]time.Time, len(urls))}
}

// pick returns the current server's index and base URL.
func (s *serverSet) pick() (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.urls[s.cur]
}

// current returns the current server's base URL.
func (s *serverSet) current() string {
	_, u := s.pick()
	return u
}

// name returns server i's URL for logs (without password).
func (s *serverSet) name(i int) string { return s.names[i] }

// report records the outcome of a request to server i (err nil: success). It
// returns true when the request failed over to another server that has not
// failed recently, so the caller may send it again at once.
func (s *serverSet) report(i int, err error) (retryNow bool) {
	if !failoverError(err) {
		s.mu.Lock()
		s.failedAt[i] = time.Time{}
		s.mu.Unlock()
		return false
	}
	if len(s.urls) == 1 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.failedAt[i] = now
	if i == s.cur {
		s.cur = (s.cur + 1) % len(s.urls)
		s.log.Info("kkd server failed; switching to the next one", "server", s.names[i], "next_server", s.names[s.cur], "err", err)
	}
	f := s.failedAt[s.cur]
	return f.IsZero() || now.Sub(f) >= serverFailMemory
}

// transportError is a request that got no answer from the server: the
// connection failed, dropped or timed out.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// failoverError tells whether err says the server is gone rather than
// answering: a transport error or a 502, 503 or 504 (a proxy or load
// balancer without a healthy backend, kkd shutting down).
func failoverError(err error) bool {
	if err == nil {
		return false
	}
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
	}
	return false
}

// errServerSwitched marks an error of a request that failed over to a server
// that has not failed recently: the caller retries at once, without backoff.
var errServerSwitched = errors.New("switched to another kkd server")

// transport wraps an error of http.Client.Do (or of reading the answer) as a
// transportError unless it is caused by ctx, the caller's context: a
// cancelled request says nothing about the server.
func transport(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	return &transportError{err}
}

// retryAt wraps err with errServerSwitched when retryNow.
func retryAt(err error, retryNow bool) error {
	if !retryNow || err == nil {
		return err
	}
	return fmt.Errorf("%w: %w", errServerSwitched, err)
}
