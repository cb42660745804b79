package notifier

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Embed colours.
const (
	colorGreen = 0x2eb67d
	colorRed   = 0xe01e5a
)

// sendDiscord posts an embed to the Discord webhook: red when the run
// failed, green otherwise, with jobs erred, pass ratio, regressions, fixes,
// new issues and commit / pull request links.
func (n *Notifier) sendDiscord(ctx context.Context, cfg any, s *Summary) (string, error) {
	hook := field(cfg, "webhook")
	if !strings.HasPrefix(hook, "https://") && !strings.HasPrefix(hook, "http://") {
		return "", permanent(fmt.Errorf("discord: the webhook is not an http(s) URL: set notification.discord.webhook to the channel's webhook URL, e.g. \"#{secrets.discord_hook}\""))
	}
	color := colorGreen
	if s.Failed() {
		color = colorRed
	}
	fields := []map[string]any{
		{"name": "Jobs erred", "value": fmt.Sprintf("%d of %d", s.Run.JobsError, s.Run.JobsTotal), "inline": true},
		{"name": "Tests passed", "value": s.PassRatio(), "inline": true},
		{"name": "Regressions", "value": strconv.Itoa(s.Counts.Regr), "inline": true},
		{"name": "Fixes", "value": strconv.Itoa(s.Counts.Fix), "inline": true},
		{"name": "New issues", "value": strconv.Itoa(s.Counts.IssuesNew), "inline": true},
	}
	if c := s.Commit(); c != "" {
		v := short(c)
		if u := s.commitURL(); u != "" {
			v = fmt.Sprintf("[%s](%s)", short(c), u)
		}
		fields = append(fields, map[string]any{"name": "Commit", "value": v, "inline": true})
	}
	if pr := s.pr(); pr != nil {
		v := fmt.Sprintf("#%d", pr.Number)
		if pr.URL != "" {
			v = fmt.Sprintf("[#%d %s](%s)", pr.Number, pr.Title, pr.URL)
		}
		fields = append(fields, map[string]any{"name": "Pull request", "value": v, "inline": false})
	}
	embed := map[string]any{"title": s.Title(), "color": color, "fields": fields,
		"description": fmt.Sprintf("%s/%s, stage %s, run %s: **%s**", s.Project, s.Branch, s.Stage, s.Run.Label, s.Result())}
	if s.RunURL != "" {
		embed["url"] = s.RunURL
	}
	body := map[string]any{"username": "kk", "embeds": []any{embed}}
	err := n.retry(ctx, func(ctx context.Context) error {
		return n.postJSON(ctx, "discord webhook", hook, nil, body, nil)
	})
	if err != nil {
		return "", err
	}
	return "embed posted (" + s.Result() + ")", nil
}
