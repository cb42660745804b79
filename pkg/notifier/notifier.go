// Package notifier sends the notifications a stage asks for in its
// `notification` key: an email, a Slack message, a Discord webhook embed and
// a GitHub commit status. Radicle is refused by the schema.
//
// When: at a run's start only the GitHub status (pending); at its end,
// after the results analysis so the counts are known, every channel.
//
// Delivery never touches the run's state machine: RunStarted and RunEnded
// only queue the run; workers send in the background, each attempt bounded
// by a timeout, transient failures (network errors, HTTP 5xx and 429, SMTP
// 4xx) retried a bounded number of times. Each notification is recorded on
// the run (store.NotificationStore): claimed first, so that of several kkd
// replicas one sends it, then marked sent, failed (with the reason) or
// skipped. A replica that stops while sending leaves it "sending": at most
// once, never twice.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/secrets"
	"github.com/kraken-go/kk/pkg/store"
)

// Evaluator returns a run's notification key, evaluated in the run's
// context with #{...} interpolated and secrets left as references
// (engine.Engine.RunNotification).
type Evaluator func(ctx context.Context, runID int64) (map[string]any, error)

// Config of a Notifier.
type Config struct {
	Store    store.Store
	Logger   *slog.Logger
	Evaluate Evaluator
	// Secrets opens the project secrets that notification values name
	// (#{secrets.NAME}); nil: such values fail with a message.
	Secrets *secrets.Cipher
	// PublicURL is kkd's address as users reach it (--public-url), used in
	// links; empty: no links.
	PublicURL string
	// SMTP is the mail server for email notifications; nil: emails fail
	// with a message saying how to configure one.
	SMTP *SMTPConfig
	// SlackToken is the default Slack bot token (a stage may give its own).
	SlackToken string
	// SlackAPI is Slack's Web API base URL (default https://slack.com/api).
	SlackAPI string
	// GitHubAPI is GitHub's REST API base URL (default
	// https://api.github.com; https://HOST/api/v3 for GitHub Enterprise).
	GitHubAPI string
	// HTTP is the client for Slack, Discord and GitHub (default: one with
	// no overall timeout; every attempt has Timeout).
	HTTP *http.Client
	// Timeout bounds one attempt of one send (default 15 s).
	Timeout time.Duration
	// Attempts is how many times a transient failure is tried (default 3).
	Attempts int
	// RetryWait is the wait before the second attempt, doubled for each
	// further one (default 1 s).
	RetryWait time.Duration
	// Workers is how many notifications are sent at once (default 4).
	Workers int
}

// Notifier queues runs and sends their notifications in the background.
//
// Order: a run's notifications all go through one worker (queues[run id
// mod workers]), so its start is sent before its end (GitHub would keep a
// late "pending" over the "failure"). When another replica started the run,
// the end's GitHub status waits (bounded) until the start's is no longer
// being sent.
type Notifier struct {
	cfg    Config
	queues []chan task
	wg     sync.WaitGroup
}

type task struct {
	runID int64
	event ci.NotifyEvent
}

// queueSize bounds the runs waiting to be notified; beyond it a
// notification is dropped with an error log rather than blocking the caller.
const queueSize = 1024

// New returns a notifier; call Start to run its workers.
func New(cfg Config) *Notifier {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SlackAPI == "" {
		cfg.SlackAPI = "https://slack.com/api"
	}
	if cfg.GitHubAPI == "" {
		cfg.GitHubAPI = "https://api.github.com"
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	n := &Notifier{cfg: cfg, queues: make([]chan task, cfg.Workers)}
	for i := range n.queues {
		n.queues[i] = make(chan task, queueSize)
	}
	return n
}

// Start runs the workers until ctx ends; Wait waits for them.
func (n *Notifier) Start(ctx context.Context) {
	for _, q := range n.queues {
		n.wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case t := <-q:
					n.notify(ctx, t)
				}
			}
		})
	}
}

// Wait returns once the workers stopped.
func (n *Notifier) Wait() { n.wg.Wait() }

// RunStarted queues the run's start notifications. It never blocks.
func (n *Notifier) RunStarted(runID int64) { n.enqueue(task{runID, ci.NotifyStart}) }

// RunEnded queues the run's end notifications. It never blocks.
func (n *Notifier) RunEnded(runID int64) { n.enqueue(task{runID, ci.NotifyEnd}) }

func (n *Notifier) enqueue(t task) {
	q := n.queues[uint64(t.runID)%uint64(len(n.queues))]
	select {
	case q <- t:
	default:
		n.cfg.Logger.Error("notification queue full: notification dropped", "run_id", t.runID, "event", t.event)
	}
}

// channel is one way of notifying.
type channel struct {
	name string
	// send delivers msg with the channel's settings cfg (the value of its
	// key, secrets resolved) and returns what it did.
	send func(ctx context.Context, cfg any, s *Summary) (string, error)
}

func (n *Notifier) channels(event ci.NotifyEvent) []channel {
	gh := channel{"github", n.sendGitHub}
	if event == ci.NotifyStart {
		return []channel{gh}
	}
	return []channel{{"email", n.sendEmail}, {"slack", n.sendSlack}, {"discord", n.sendDiscord}, gh}
}

// notify sends the run's notifications of t.event.
func (n *Notifier) notify(ctx context.Context, t task) {
	log := n.cfg.Logger.With("run_id", t.runID, "event", t.event)
	cfgs, err := n.cfg.Evaluate(ctx, t.runID)
	if err != nil {
		if !errors.Is(err, ci.ErrNotFound) {
			log.Error("cannot evaluate the run's notifications", "err", err)
		}
		return
	}
	var chans []channel
	for _, c := range n.channels(t.event) {
		if _, ok := cfgs[c.name]; ok {
			chans = append(chans, c)
		}
	}
	if len(chans) == 0 {
		return
	}
	s, err := n.summary(ctx, t.runID, t.event)
	if err != nil {
		log.Error("cannot summarise the run for its notifications", "err", err)
		return
	}
	var vals map[string]api.SecretValue
	var secErr error
	loaded := false
	for _, c := range chans {
		rec := ci.Notification{RunID: t.runID, Event: t.event, Round: s.round(), Channel: c.name}
		ok, err := n.cfg.Store.ClaimNotification(ctx, rec)
		if err != nil {
			log.Error("cannot claim a notification", "channel", c.name, "err", err)
			continue
		}
		if !ok {
			continue // sent (or being sent) by this or another replica
		}
		if t.event == ci.NotifyEnd && c.name == "github" {
			n.awaitStart(ctx, t.runID, c.name)
		}
		if !loaded {
			vals, secErr = n.projectSecrets(ctx, s.ProjectID, s.Project)
			loaded = true
		}
		var msg string
		cfg, err := resolveValue(cfgs[c.name], vals, secErr, s.Project)
		if err == nil {
			msg, err = c.send(ctx, cfg, s)
		}
		var skip *skipError
		switch {
		case errors.As(err, &skip):
			rec.State, rec.Message = ci.NotifySkipped, skip.msg
			log.Info("notification skipped", "channel", c.name, "reason", skip.msg)
		case err != nil:
			rec.State, rec.Message = ci.NotifyFailed, err.Error()
			log.Warn("notification failed", "channel", c.name, "err", err)
		default:
			rec.State, rec.Message = ci.NotifySent, msg
			log.Info("notification sent", "channel", c.name, "detail", msg)
		}
		if err := n.cfg.Store.SetNotificationResult(context.WithoutCancel(ctx), rec); err != nil {
			log.Error("cannot record a notification's result", "channel", c.name, "err", err)
		}
	}
}

// skipError: nothing to send; not a failure.
type skipError struct{ msg string }

func (e *skipError) Error() string { return e.msg }

func skipf(format string, args ...any) error { return &skipError{fmt.Sprintf(format, args...)} }

// permanentError is a failure that retrying does not fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// retry runs fn up to Attempts times, each under Timeout, while it fails
// with an error that is not permanent.
func (n *Notifier) retry(ctx context.Context, fn func(ctx context.Context) error) error {
	wait := n.cfg.RetryWait
	var err error
	for i := range n.cfg.Attempts {
		if i > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w (gave up: kkd is stopping)", err)
			case <-t.C:
			}
			wait *= 2
		}
		actx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
		err = fn(actx)
		cancel()
		var p *permanentError
		if err == nil || errors.As(err, &p) {
			return err
		}
	}
	if n.cfg.Attempts > 1 {
		return fmt.Errorf("%w (after %d attempts)", err, n.cfg.Attempts)
	}
	return err
}

// awaitStart waits, at most as long as a notification's attempts can take,
// while the run's start notification on channel is being sent (by another
// replica), so that the end's status lands after it.
func (n *Notifier) awaitStart(ctx context.Context, runID int64, channel string) {
	limit := time.Duration(n.cfg.Attempts)*n.cfg.Timeout + (time.Duration(1)<<n.cfg.Attempts)*n.cfg.RetryWait
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := n.cfg.Store.ListNotifications(ctx, runID)
		if err != nil {
			return
		}
		sending := false
		for _, x := range list {
			if x.Event == ci.NotifyStart && x.Channel == channel && x.State == ci.NotifySending {
				sending = true
			}
		}
		if !sending {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			n.cfg.Logger.Warn("the run's start notification is still being sent; sending its end anyway", "run_id", runID, "channel", channel)
			return
		case <-tick.C:
		}
	}
}
