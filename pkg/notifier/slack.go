package notifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// sendSlack posts the summary with chat.postMessage to the channel, with
// the stage's token or kkd's --slack-token.
func (n *Notifier) sendSlack(ctx context.Context, cfg any, s *Summary) (string, error) {
	channel := field(cfg, "channel")
	if channel == "" {
		return "", permanent(errors.New("slack: the channel is empty: set notification.slack.channel, e.g. \"#ci\""))
	}
	token := field(cfg, "token")
	if token == "" {
		token = n.cfg.SlackToken
	}
	if token == "" {
		return "", permanent(errors.New("slack: no token: start kkd with --slack-token (KKD_SLACK_TOKEN) or set notification.slack.token, e.g. \"#{secrets.slack_token}\""))
	}
	body := map[string]any{"channel": channel, "text": s.Title(), "blocks": []any{
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "```" + strings.ReplaceAll(s.Text(), "```", "'''") + "```"}},
	}}
	var out struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	target := strings.TrimRight(n.cfg.SlackAPI, "/") + "/chat.postMessage"
	err := n.retry(ctx, func(ctx context.Context) error {
		out.OK, out.Error = false, ""
		if err := n.postJSON(ctx, "slack chat.postMessage", target, http.Header{"Authorization": {"Bearer " + token}}, body, &out); err != nil {
			return err
		}
		if !out.OK {
			return permanent(fmt.Errorf("slack chat.postMessage: %s", out.Error))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return "posted to " + channel, nil
}
