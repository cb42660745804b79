package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/secrets"
)

// Exit codes of kkd.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// usageError marks errors in flags or arguments.
type usageError struct{ error }

// Main runs kkd with args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, version string) int {
	root := NewCmdRoot(stdout, stderr, version)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "kkd:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitError
}

// NewCmdRoot returns the kkd command tree.
func NewCmdRoot(stdout, stderr io.Writer, version string) *cobra.Command {
	root := &cobra.Command{
		Use:           "kkd",
		Short:         "kkd is the Kraken in Go daemon: JSON API, scheduler, log hub",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newCmdServe(stdout, stderr, version), newCmdMigrate(stdout, stderr), newCmdDB(stdout, stderr), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(stdout, version)
			return err
		},
	})
	return root
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envBool(key string, def bool) (bool, error) {
	v, ok := os.LookupEnv(key)
	if !ok || v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, usageError{fmt.Errorf("%s=%q: use true or false", key, v)}
	}
	return b, nil
}

func envInt(key string, def int) (int, error) {
	v, ok := os.LookupEnv(key)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return def, usageError{fmt.Errorf("%s=%q: give a whole number >= 0", key, v)}
	}
	return n, nil
}

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/kkd"
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".local", "share", "kkd")
	}
	return "kkd-data"
}

func newCmdServe(stdout, stderr io.Writer, version string) *cobra.Command {
	o := Options{Stdout: stdout, Stderr: stderr, Version: version}
	var logLevel string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon",
		Long: `Run the daemon. With no flags it keeps everything in the data dir: an SQLite
database, blobs, and the built-in local agent's workspace.

Environment: KKD_LISTEN, KKD_DATA_DIR, KKD_DB, KKD_STORAGE, KKD_ADMIN_PASSWORD
(admin password on first start; otherwise one is generated and printed once),
KKD_SECRET_KEY (base64 of the 32-byte key that encrypts project secrets; otherwise
DATA_DIR/secret.key, created on first start: back it up with the database),
KKD_AGENT_REGISTRATION_KEY, KKD_AGENT_BINARIES, KKD_JOB_RETRIES, KKD_LOCAL_AGENT, KKD_DEMO, KKD_LOG_LEVEL,
KKD_PUBLIC_URL; for notifications (docs/notifications.md) KKD_SMTP_URL and
KKD_SLACK_TOKEN (read from the environment when the flag is not given, so the
password and token stay out of the process list), KKD_SLACK_API_URL,
KKD_GITHUB_API_URL, KKD_PPROF, KKD_PPROF_ALLOW_REMOTE.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", logLevel)}
			}
			if o.JobRetries < 0 {
				return usageError{fmt.Errorf("--job-retries %d: give 0 (no retries) or more", o.JobRetries)}
			}
			o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
			o.AdminPassword = os.Getenv("KKD_ADMIN_PASSWORD")
			o.SecretKey = os.Getenv(secrets.KeyEnv)
			if o.Notify.SMTPURL == "" {
				o.Notify.SMTPURL = os.Getenv("KKD_SMTP_URL")
			}
			if o.Notify.SlackToken == "" {
				o.Notify.SlackToken = os.Getenv("KKD_SLACK_TOKEN")
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Serve(ctx, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Listen, "listen", envOr("KKD_LISTEN", "127.0.0.1:6363"), "address to serve the API on (KKD_LISTEN)")
	f.StringVar(&o.DataDir, "data-dir", envOr("KKD_DATA_DIR", defaultDataDir()), "data directory (KKD_DATA_DIR)")
	f.StringVar(&o.DB, "db", envOr("KKD_DB", ""), "database URL, sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB (KKD_DB; default sqlite://DATA_DIR/kk.db; see docs/postgres.md)")
	f.StringVar(&o.Storage, "storage", envOr("KKD_STORAGE", ""), "blob storage URL (KKD_STORAGE): file://PATH (default file://DATA_DIR/blobs) or s3://[ACCESS:SECRET@]HOST[:PORT]/BUCKET[?secure=false&region=R] (S3 credentials also from KKD_S3_ACCESS_KEY/KKD_S3_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
	f.StringVar(&o.RegistrationKey, "agent-registration-key", envOr("KKD_AGENT_REGISTRATION_KEY", ""), "key that lets agents enrol without manual authorization (KKD_AGENT_REGISTRATION_KEY)")
	f.StringVar(&o.AgentBinaries, "agent-binaries", envOr("KKD_AGENT_BINARIES", ""), "directory of kkagent-<os>-<arch> binaries served to agents for install and self-upgrade (KKD_AGENT_BINARIES; default: agents/ next to kkd)")
	f.StringVar(&o.PublicURL, "public-url", envOr("KKD_PUBLIC_URL", ""), "kkd's address as users and forges reach it, like https://ci.example.com: used in notification links and by `kk project webhook` (KKD_PUBLIC_URL)")
	f.StringVar(&o.Notify.SMTPURL, "smtp-url", "", "mail server of email notifications, smtp://USER:PASSWORD@HOST:PORT?from=ADDR (STARTTLS) or smtps://... (TLS); query: starttls=require, ca=FILE (KKD_SMTP_URL)")
	f.StringVar(&o.Notify.SlackToken, "slack-token", "", "default Slack bot token of slack notifications (KKD_SLACK_TOKEN)")
	f.StringVar(&o.Notify.SlackAPI, "slack-api-url", envOr("KKD_SLACK_API_URL", "https://slack.com/api"), "Slack Web API base URL (KKD_SLACK_API_URL)")
	f.StringVar(&o.Notify.GitHubAPI, "github-api-url", envOr("KKD_GITHUB_API_URL", "https://api.github.com"), "GitHub REST API base URL of commit statuses; GitHub Enterprise: https://HOST/api/v3 (KKD_GITHUB_API_URL)")
	f.StringVar(&logLevel, "log-level", envOr("KKD_LOG_LEVEL", "info"), "log level: debug, info, warn, error (KKD_LOG_LEVEL)")
	localDef, err1 := envBool("KKD_LOCAL_AGENT", true)
	demoDef, err2 := envBool("KKD_DEMO", true)
	retriesDef, err3 := envInt("KKD_JOB_RETRIES", 2)
	f.IntVar(&o.JobRetries, "job-retries", retriesDef, "how often a job is retried after an infrastructure failure (lost agent, executor error); 0: never (KKD_JOB_RETRIES)")
	f.BoolVar(&o.LocalAgent, "local-agent", localDef, "run the built-in, pre-authorized local agent (KKD_LOCAL_AGENT)")
	f.BoolVar(&o.Demo, "demo", demoDef, "create the demo project on a fresh data dir (KKD_DEMO)")
	f.StringVar(&o.Pprof, "pprof", envOr("KKD_PPROF", ""), "serve Go's net/http/pprof profiles on this address, e.g. 127.0.0.1:6060 (KKD_PPROF; default off; loopback only unless --pprof-allow-remote)")
	remoteDef, err4 := envBool("KKD_PPROF_ALLOW_REMOTE", false)
	f.BoolVar(&o.PprofAllowRemote, "pprof-allow-remote", remoteDef, "let --pprof listen on a non-loopback address: the profiles have no authentication and show kkd's command line (KKD_PPROF_ALLOW_REMOTE)")
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		c.PreRunE = func(*cobra.Command, []string) error { return err }
	}
	return c
}
