package daemon

import (
	"fmt"
	"log/slog"
	"net/url"

	"github.com/kraken-go/kk/pkg/notifier"
	"github.com/kraken-go/kk/pkg/secrets"
	"github.com/kraken-go/kk/pkg/store"
)

// NotifyOptions configure the notifications stages ask for (see
// docs/notifications.md).
type NotifyOptions struct {
	// SMTPURL is the mail server, smtp[s]://USER:PASSWORD@HOST:PORT?from=ADDR
	// (--smtp-url, KKD_SMTP_URL); "": no emails.
	SMTPURL string
	// SlackToken is the default Slack bot token (--slack-token, KKD_SLACK_TOKEN).
	SlackToken string
	// SlackAPI and GitHubAPI are the API base URLs (default Slack's and
	// GitHub's; GitHub Enterprise: https://HOST/api/v3).
	SlackAPI  string
	GitHubAPI string
}

// checkHTTPURL checks a flag that must be an http(s) URL ("" is allowed).
func checkHTTPURL(flag, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--%s %q: give an http(s) URL, like https://ci.example.com", flag, v)
	}
	return nil
}

// newNotifier builds the run notifier from the options.
func newNotifier(o Options, st store.Store, cipher *secrets.Cipher, log *slog.Logger, eval notifier.Evaluator) (*notifier.Notifier, error) {
	for _, f := range []struct{ flag, v string }{{"public-url", o.PublicURL}, {"slack-api-url", o.Notify.SlackAPI}, {"github-api-url", o.Notify.GitHubAPI}} {
		if err := checkHTTPURL(f.flag, f.v); err != nil {
			return nil, err
		}
	}
	var smtp *notifier.SMTPConfig
	if o.Notify.SMTPURL != "" {
		var err error
		if smtp, err = notifier.ParseSMTPURL(o.Notify.SMTPURL); err != nil {
			return nil, err
		}
	}
	return notifier.New(notifier.Config{
		Store: st, Logger: log.With("component", "notifier"), Evaluate: eval, Secrets: cipher,
		PublicURL: o.PublicURL, SMTP: smtp, SlackToken: o.Notify.SlackToken,
		SlackAPI: o.Notify.SlackAPI, GitHubAPI: o.Notify.GitHubAPI,
	}), nil
}
