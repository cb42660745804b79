// Package agentcmd is the kkagent command line: it runs jobs for kkd on a build host.
//
//	kkagent run -s URL -d DIR [--registration-key KEY] [--group G]... [--name NAME]
//	kkagent version
//
// Exit codes: 0 ok, 1 failure, 2 usage error. Logs go to stderr.
package agentcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/agent"
	"github.com/kraken-go/kk/pkg/version"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks errors that exit with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Main executes the kkagent command line and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	root := NewCmdRoot(stdout, stderr, getenv)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "kkagent: "+err.Error())
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		fmt.Fprintln(stderr, "run 'kkagent --help' for usage")
		return exitUsage
	}
	return exitFailure
}

// isCobraUsageError recognises cobra's own argument errors.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
		strings.HasPrefix(msg, "unknown flag") || strings.HasPrefix(msg, "unknown shorthand flag")
}

// NewCmdRoot returns the kkagent command tree.
func NewCmdRoot(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:           "kkagent",
		Short:         "Kraken in Go build agent: runs jobs handed out by kkd",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(stderr, getenv), newVersionCmd(stdout))
	return root
}

// runOptions are the flags of `kkagent run`.
type runOptions struct {
	server          string
	dataDir         string
	registrationKey string
	groups          []string
	name            string
	logLevel        string
}

func newRunCmd(stderr io.Writer, getenv func(string) string) *cobra.Command {
	opts := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Register with kkd and run jobs until stopped (SIGINT/SIGTERM)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), opts, stderr, getenv)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.server, "server", "s", getenv("KRAKEN_SERVER_ADDR"), "kkd URL, e.g. http://kkd:6363 (env KRAKEN_SERVER_ADDR)")
	f.StringVarP(&opts.dataDir, "data-dir", "d", getenv("KKAGENT_DATA_DIR"),
		"data dir: identity, credential, workspaces (env KKAGENT_DATA_DIR; default /var/lib/kkagent as root, else ~/.local/share/kkagent)")
	f.StringVar(&opts.registrationKey, "registration-key", getenv("KKAGENT_REGISTRATION_KEY"),
		"key that authorizes the agent at once (env KKAGENT_REGISTRATION_KEY)")
	f.StringArrayVar(&opts.groups, "group", nil, "group to join when authorized by the registration key (repeatable)")
	f.StringVar(&opts.name, "name", "", "agent name shown by kkd (default: the host name)")
	f.StringVar(&opts.logLevel, "log-level", envOr(getenv, "KKAGENT_LOG_LEVEL", "info"), "debug, info, warn or error (env KKAGENT_LOG_LEVEL)")
	return cmd
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func runAgent(ctx context.Context, opts *runOptions, stderr io.Writer, getenv func(string) string) error {
	if opts.server == "" {
		return usageError{errors.New("no server: pass -s URL or set KRAKEN_SERVER_ADDR")}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", opts.logLevel)}
	}
	dataDir := opts.dataDir
	if dataDir == "" {
		d, err := defaultDataDir(getenv)
		if err != nil {
			return err
		}
		dataDir = d
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	a, err := agent.New(agent.Config{
		ServerURL:       opts.server,
		DataDir:         dataDir,
		Name:            opts.name,
		RegistrationKey: opts.registrationKey,
		Groups:          opts.groups,
		Logger:          logger,
	})
	if err != nil {
		return usageError{err}
	}
	return a.Run(ctx)
}

// defaultDataDir is /var/lib/kkagent for root, else $XDG_DATA_HOME/kkagent or
// ~/.local/share/kkagent.
func defaultDataDir(getenv func(string) string) (string, error) {
	if os.Geteuid() == 0 {
		return "/var/lib/kkagent", nil
	}
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "kkagent"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data dir: pass -d DIR (%w)", err)
	}
	return filepath.Join(home, ".local", "share", "kkagent"), nil
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(stdout, "kkagent "+version.String())
			return err
		},
	}
}
