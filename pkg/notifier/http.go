package notifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// postJSON posts body as JSON with the headers and decodes a JSON answer
// into out (when not nil). Failures: HTTP 5xx, 429 and network errors are
// transient, other statuses permanent. Errors never include the URL, which
// may hold a token (Discord webhooks).
func (n *Notifier) postJSON(ctx context.Context, what, target string, header http.Header, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return permanent(fmt.Errorf("%s: encode request: %w", what, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(data))
	if err != nil {
		return permanent(fmt.Errorf("%s: bad URL: %w", what, stripURL(err)))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kkd")
	resp, err := n.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, stripURL(err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("%s: HTTP %d: %s", what, resp.StatusCode, snippet(raw))
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return err
		}
		return permanent(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return permanent(fmt.Errorf("%s: answer is not JSON: %s", what, snippet(raw)))
		}
	}
	return nil
}

// stripURL drops the URL from a *url.Error.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// snippet is the start of an answer body, on one line.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// field returns the string cfg[key] of a channel's settings.
func field(cfg any, key string) string {
	m, _ := cfg.(map[string]any)
	s, _ := m[key].(string)
	return s
}
