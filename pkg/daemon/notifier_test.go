package daemon

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNotifierSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    Options
		err  string
	}{
		{"none", Options{}, ""},
		{"all", Options{PublicURL: "https://ci.example.com", Notify: NotifyOptions{
			SMTPURL: "smtps://u:p@mail.example.com?from=ci@example.com", SlackToken: "x",
			SlackAPI: "http://127.0.0.1:9/api", GitHubAPI: "https://ghe.example.com/api/v3"}}, ""},
		{"public url without scheme", Options{PublicURL: "ci.example.com"}, `--public-url "ci.example.com": give an http(s) URL`},
		{"github api not http", Options{Notify: NotifyOptions{GitHubAPI: "ftp://x"}}, "--github-api-url"},
		{"smtp without from", Options{Notify: NotifyOptions{SMTPURL: "smtp://mail.example.com"}}, "--smtp-url: from=\"\" is not an email address"},
		{"smtp scheme", Options{Notify: NotifyOptions{SMTPURL: "mail.example.com:25"}}, "--smtp-url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := newNotifier(tc.o, nil, nil, slog.New(slog.DiscardHandler), nil)
			if tc.err == "" {
				require.NoError(t, err)
				require.NotNil(t, n)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}
