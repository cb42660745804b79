package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/notify"
)

// EventsChannel is the NOTIFY channel on which kkd replicas exchange hub keys.
const EventsChannel = "kk_events"

// maxPayload bounds one NOTIFY payload, well under PostgreSQL's 8000 bytes.
const maxPayload = 4000

// maxKey is the longest key a bridge sends; longer keys are dropped (with a
// warning): every key kkd uses is a few dozen bytes.
const maxKey = 200

// Defaults of BridgeConfig.
const (
	DefaultReconnectMin = 100 * time.Millisecond
	DefaultReconnectMax = 5 * time.Second
)

var _ notify.Bridge = (*Bridge)(nil)

// BridgeConfig of NewBridge.
type BridgeConfig struct {
	// ReplicaID names this kkd among the replicas; a replica ignores its own
	// events. It must not contain a newline.
	ReplicaID string
	Logger    *slog.Logger
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// reconnect the listener (defaults DefaultReconnectMin, DefaultReconnectMax).
	ReconnectMin, ReconnectMax time.Duration
}

// Bridge is the notify.Bridge of kkd replicas sharing one PostgreSQL
// database. Send queues keys; a sender goroutine coalesces what is pending
// (a key queued twice is sent once) and sends it with pg_notify on
// EventsChannel through the store's pool, as payloads "REPLICA\nKEY\nKEY..."
// of at most 4000 bytes. A dedicated connection (application_name
// "kkd-listen REPLICA") LISTENs and delivers the other replicas' keys to the
// hub. When that connection fails, the bridge reconnects with backoff. Each
// time it starts listening (the first time, and after every reconnect) it
// wakes every subscriber (Hub.DeliverAll) and the dispatcher
// (notify.DispatchKey), because events sent while it did not listen are lost.
type Bridge struct {
	s   *Store
	cfg BridgeConfig

	mu      sync.Mutex
	pending map[string]struct{}
	wake    chan struct{}
}

// NewBridge returns a bridge on the store's database; run it with Run.
func (s *Store) NewBridge(cfg BridgeConfig) *Bridge {
	if cfg.Logger == nil {
		cfg.Logger = s.log
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = DefaultReconnectMin
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = max(DefaultReconnectMax, cfg.ReconnectMin)
	}
	return &Bridge{s: s, cfg: cfg, pending: make(map[string]struct{}), wake: make(chan struct{}, 1)}
}

// Send queues key for the other replicas. It never blocks.
func (b *Bridge) Send(key string) {
	if key == "" || len(key) > maxKey || strings.ContainsRune(key, '\n') {
		b.cfg.Logger.Warn("notify bridge: key not sent to other replicas (empty, too long or with a newline)", "key", key)
		return
	}
	b.mu.Lock()
	b.pending[key] = struct{}{}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Run sends queued keys and delivers the other replicas' keys to hub until
// ctx is done.
func (b *Bridge) Run(ctx context.Context, hub *notify.Hub) error {
	var wg sync.WaitGroup
	wg.Go(func() { b.sendLoop(ctx) })
	b.listenLoop(ctx, hub)
	wg.Wait()
	return nil
}

// take returns the pending keys as payloads and clears them.
func (b *Bridge) take() []string {
	b.mu.Lock()
	keys := make([]string, 0, len(b.pending))
	for k := range b.pending {
		keys = append(keys, k)
	}
	clear(b.pending)
	b.mu.Unlock()
	var payloads []string
	var sb strings.Builder
	for _, k := range keys {
		if sb.Len() > 0 && sb.Len()+1+len(k) > maxPayload {
			payloads = append(payloads, sb.String())
			sb.Reset()
		}
		if sb.Len() == 0 {
			sb.WriteString(b.cfg.ReplicaID)
		}
		sb.WriteByte('\n')
		sb.WriteString(k)
	}
	if sb.Len() > 0 {
		payloads = append(payloads, sb.String())
	}
	return payloads
}

// requeue puts the keys of payloads that could not be sent back.
func (b *Bridge) requeue(payloads []string) {
	b.mu.Lock()
	for _, p := range payloads {
		for _, k := range strings.Split(p, "\n")[1:] {
			b.pending[k] = struct{}{}
		}
	}
	b.mu.Unlock()
}

func (b *Bridge) sendLoop(ctx context.Context) {
	backoff := b.cfg.ReconnectMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
		payloads := b.take()
		if len(payloads) == 0 {
			continue
		}
		_, err := b.s.pool.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, EventsChannel, payloads)
		if err == nil {
			backoff = b.cfg.ReconnectMin
			continue
		}
		if ctx.Err() != nil {
			return
		}
		b.cfg.Logger.Warn("notify bridge: send to other replicas failed; retrying", "err", b.s.dbErr(err), "retry_in", backoff)
		b.requeue(payloads)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, b.cfg.ReconnectMax)
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// listenLoop keeps a listening connection and delivers what it receives.
func (b *Bridge) listenLoop(ctx context.Context, hub *notify.Hub) {
	backoff := b.cfg.ReconnectMin
	connected := false // listened before: a reconnect must catch up
	for ctx.Err() == nil {
		conn, err := b.listen(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.cfg.Logger.Warn("notify bridge: cannot listen for other replicas' events; retrying", "err", err, "retry_in", backoff)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, b.cfg.ReconnectMax)
			continue
		}
		backoff = b.cfg.ReconnectMin
		if connected {
			b.cfg.Logger.Info("notify bridge: listening again; waking every follower and the dispatcher")
		} else {
			b.cfg.Logger.Debug("notify bridge: listening", "channel", EventsChannel)
		}
		connected = true
		// Events sent while we did not listen (before the first LISTEN, or
		// while reconnecting) are lost: everything may have changed.
		hub.DeliverAll()
		hub.Deliver(notify.DispatchKey)
		err = b.receive(ctx, conn, hub)
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(closeCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		b.cfg.Logger.Warn("notify bridge: lost the listening connection; reconnecting", "err", err)
	}
}

// listen opens the dedicated connection and LISTENs.
func (b *Bridge) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, b.s.dedicatedConfig(appName("kkd-listen", b.cfg.ReplicaID)))
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", b.s.where, err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+EventsChannel); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("listen on %s: %w", EventsChannel, b.s.dbErr(err))
	}
	return conn, nil
}

// receive delivers notifications until the connection fails or ctx is done.
func (b *Bridge) receive(ctx context.Context, conn *pgx.Conn, hub *notify.Hub) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return b.s.dbErr(err)
		}
		from, keys, ok := strings.Cut(n.Payload, "\n")
		if !ok || from == b.cfg.ReplicaID {
			continue
		}
		for _, k := range strings.Split(keys, "\n") {
			hub.Deliver(k)
		}
	}
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// appName is the application_name of a dedicated connection: what and which
// replica, cut to PostgreSQL's 63 bytes.
func appName(what, replica string) string {
	n := what + " " + replica
	if len(n) > 63 {
		n = n[:63]
	}
	return n
}

// dedicatedConfig is the config of a connection outside the pool (listener,
// leader lock): the pool's settings, the given application_name, and TCP
// keepalives that notice a silently lost server within about 25 s (such a
// connection may be idle for hours).
func (s *Store) dedicatedConfig(app string) *pgx.ConnConfig {
	cc := s.pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["application_name"] = app
	ka := net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3}
	d := &net.Dialer{Timeout: cc.ConnectTimeout, KeepAliveConfig: ka}
	cc.DialFunc = d.DialContext
	return cc
}
