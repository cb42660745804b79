// Package agentcmd is the kkagent command line: it runs jobs for kkd on a build host.
//
//	kkagent run -s URL[,URL...] -d DIR [--registration-key KEY] [--group G]... [--name NAME]
//	            [--no-supervisor] [--self-upgrade=false] [--upgrade-check-interval D] [--log-level L]
//	kkagent worker ...     (hidden: the process `run` supervises; same flags)
//	kkagent version
//
// `kkagent run` is a small supervisor (agentdist.Supervisor, GoCD's
// bootstrapper): it re-executes its own binary as `kkagent worker` with the
// same flags and environment, restarts it when it crashes, forwards
// SIGTERM/SIGINT to it, and restarts itself on the new binary after the
// worker upgraded itself between jobs. `--no-supervisor` runs the worker in
// the same process instead (containers, tests); it never self-upgrades.
//
// Exit codes (one table): 0 ok, 1 failure, 2 usage error. A supervised worker
// also exits agentdist.ExitUpgraded (3: a new binary is in place) and
// agentdist.ExitSetup (4: restarting does not help). Logs go to stderr.
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
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kraken-go/kk/pkg/agent"
	"github.com/kraken-go/kk/pkg/agentdist"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/executor/docker"
	"github.com/kraken-go/kk/pkg/executor/local"
	"github.com/kraken-go/kk/pkg/executor/lxd"
	"github.com/kraken-go/kk/pkg/version"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitUpgraded = agentdist.ExitUpgraded
	exitSetup    = agentdist.ExitSetup
)

// usageError marks errors that exit with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitError ends kkagent with a given code; err, when set, is printed.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

// Main executes the kkagent command line and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	root := NewCmdRoot(stdout, stderr, getenv)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "kkagent: "+ee.err.Error())
		}
		return ee.code
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
	root.AddCommand(newRunCmd(stdout, stderr, getenv), newWorkerCmd(stderr, getenv), newVersionCmd(stdout))
	return root
}

// runOptions are the flags of `kkagent run` and `kkagent worker`.
type runOptions struct {
	servers         []string // -s, repeatable, each a list separated by commas
	dataDir         string
	registrationKey string
	groups          []string
	name            string
	logLevel        string
	selfUpgrade     bool
	upgradeInterval string
	noSupervisor    bool // run only
	supervised      bool // worker only: started by the supervisor
}

// addAgentFlags defines the flags the supervisor and the worker share.
func addAgentFlags(f *pflag.FlagSet, opts *runOptions, getenv func(string) string) {
	var defServers []string
	if env := getenv("KRAKEN_SERVER_ADDR"); env != "" {
		defServers = []string{env}
	}
	f.StringArrayVarP(&opts.servers, "server", "s", defServers,
		"kkd URL, e.g. http://kkd:6363; several kkd replicas: URL1,URL2 or repeat -s, the agent fails over between them (env KRAKEN_SERVER_ADDR)")
	f.StringVarP(&opts.dataDir, "data-dir", "d", getenv("KKAGENT_DATA_DIR"),
		"data dir: identity, credential, workspaces, spools (env KKAGENT_DATA_DIR; default /var/lib/kkagent as root, else ~/.local/share/kkagent)")
	f.StringVar(&opts.registrationKey, "registration-key", getenv("KKAGENT_REGISTRATION_KEY"),
		"key that authorizes the agent at once (env KKAGENT_REGISTRATION_KEY)")
	f.StringArrayVar(&opts.groups, "group", nil, "group to join when authorized by the registration key (repeatable)")
	f.StringVar(&opts.name, "name", "", "agent name shown by kkd (default: the host name)")
	f.StringVar(&opts.logLevel, "log-level", envOr(getenv, "KKAGENT_LOG_LEVEL", "info"), "debug, info, warn or error (env KKAGENT_LOG_LEVEL)")
	f.BoolVar(&opts.selfUpgrade, "self-upgrade", envBool(getenv, "KKAGENT_SELF_UPGRADE", true),
		"replace the binary, between jobs, when kkd serves another one (env KKAGENT_SELF_UPGRADE; needs the supervisor)")
	f.StringVar(&opts.upgradeInterval, "upgrade-check-interval", envOr(getenv, "KKAGENT_UPGRADE_CHECK_INTERVAL", agentdist.DefaultCheckInterval.String()),
		"least time between two checks for a new binary; checks happen only between jobs (env KKAGENT_UPGRADE_CHECK_INTERVAL)")
}

func newRunCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	opts := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Register with kkd and run jobs until stopped (SIGINT/SIGTERM)",
		Long: `Register with kkd and run jobs until stopped (SIGINT/SIGTERM).

kkagent run supervises a worker process (the same binary, "kkagent worker"),
restarts it when it crashes and, when the worker upgraded itself to the binary
kkd serves, restarts itself on the new binary. Use --no-supervisor to run
everything in one process (containers, where the image is the upgrade unit).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.noSupervisor {
				return runWorker(cmd.Context(), opts, stderr, getenv)
			}
			return supervise(cmd.Context(), cmd.Flags(), opts, stdout, stderr, getenv)
		},
	}
	addAgentFlags(cmd.Flags(), opts, getenv)
	cmd.Flags().BoolVar(&opts.noSupervisor, "no-supervisor", false, "run the agent in this process, without supervisor (no restart, no self-upgrade)")
	return cmd
}

func newWorkerCmd(stderr io.Writer, getenv func(string) string) *cobra.Command {
	opts := &runOptions{}
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "Run the agent in this process (started by `kkagent run`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorker(cmd.Context(), opts, stderr, getenv)
		},
	}
	addAgentFlags(cmd.Flags(), opts, getenv)
	cmd.Flags().BoolVar(&opts.supervised, "supervised", false, "set by the supervisor")
	_ = cmd.Flags().MarkHidden("supervised")
	return cmd
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func envBool(getenv func(string) string, key string, def bool) bool {
	switch strings.ToLower(getenv(key)) {
	case "0", "false", "no", "off":
		return false
	case "1", "true", "yes", "on":
		return true
	}
	return def
}

// resolved are the checked options both processes need.
type resolved struct {
	servers         []string // normalized kkd base URLs
	dataDir         string
	logger          *slog.Logger
	upgradeInterval time.Duration
}

// resolve checks the options and builds the logger; errors are usage errors.
func resolve(opts *runOptions, stderr io.Writer, getenv func(string) string) (resolved, error) {
	if strings.TrimSpace(strings.Join(opts.servers, "")) == "" {
		return resolved{}, usageError{errors.New("no server: pass -s URL[,URL...] or set KRAKEN_SERVER_ADDR")}
	}
	servers, err := agent.ParseServerURLs(opts.servers...)
	if err != nil {
		return resolved{}, usageError{fmt.Errorf("-s: %w", err)}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.logLevel)); err != nil {
		return resolved{}, usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", opts.logLevel)}
	}
	interval, err := time.ParseDuration(opts.upgradeInterval)
	if err != nil || interval <= 0 {
		return resolved{}, usageError{fmt.Errorf("--upgrade-check-interval %q: give a positive duration such as 1m or 30s", opts.upgradeInterval)}
	}
	dataDir := opts.dataDir
	if dataDir == "" {
		d, err := defaultDataDir(getenv)
		if err != nil {
			return resolved{}, err
		}
		dataDir = d
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return resolved{servers: servers, dataDir: dataDir, logger: logger, upgradeInterval: interval}, nil
}

// supervise runs `kkagent run`: the supervisor of a `kkagent worker` process
// of the same binary, given the flags set on this command line (the
// environment is inherited).
func supervise(ctx context.Context, flags *pflag.FlagSet, opts *runOptions, stdout, stderr io.Writer, getenv func(string) string) error {
	res, err := resolve(opts, stderr, getenv)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the kkagent executable to start the worker: %w (use --no-supervisor)", err)
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	args := []string{"worker", "--supervised"}
	flags.Visit(func(f *pflag.Flag) {
		if f.Name == "no-supervisor" {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				args = append(args, "--"+f.Name+"="+v)
			}
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	res.logger.Info("kkagent supervisor starting", "component", "supervisor", "version", version.String(), "exe", exe, "pid", os.Getpid())
	sup, err := agentdist.NewSupervisor(agentdist.SupervisorConfig{
		Exe:        exe,
		WorkerArgs: args,
		Stdout:     stdout,
		Stderr:     stderr,
		Logger:     res.logger,
	})
	if err != nil {
		return err
	}
	return sup.Run(ctx)
}

// runWorker runs the agent in this process: `kkagent worker` (supervised)
// or `kkagent run --no-supervisor`.
func runWorker(ctx context.Context, opts *runOptions, stderr io.Writer, getenv func(string) string) error {
	res, err := resolve(opts, stderr, getenv)
	if err != nil {
		return setupExit(opts, err)
	}
	cfg := agent.Config{
		ServerURL:       strings.Join(res.servers, ","),
		DataDir:         res.dataDir,
		Name:            opts.name,
		RegistrationKey: opts.registrationKey,
		Groups:          opts.groups,
		Logger:          res.logger,
		Executors:       executors(ctx, res.dataDir, res.logger),
	}
	var a *agent.Agent
	switch {
	case !opts.selfUpgrade:
		res.logger.Info("self-upgrade is off (--self-upgrade=false)")
	case !opts.supervised:
		res.logger.Debug("self-upgrade is off: kkagent runs without its supervisor")
	default:
		up, err := agentdist.NewUpgrader(agentdist.UpgraderConfig{
			ServerURL: res.servers[0],
			// The upgrader follows the agent's current server; it is only
			// called by a.Run, after a is set below.
			CurrentServer: func() string { return a.CurrentServer() },
			DataDir:       res.dataDir,
			Version:       version.String(),
			Logger:        res.logger,
			Interval:      res.upgradeInterval,
		})
		if err != nil {
			res.logger.Warn("self-upgrade is off", "err", err)
		} else {
			cfg.Upgrader = up
		}
	}
	a, err = agent.New(cfg)
	if err != nil {
		return setupExit(opts, usageError{err})
	}
	err = a.Run(ctx)
	switch {
	case errors.Is(err, agent.ErrUpgraded):
		if !opts.supervised {
			return exitError{code: exitFailure, err: errors.New("kkagent upgraded itself but has no supervisor to restart it: start it again")}
		}
		return exitError{code: exitUpgraded}
	case errors.Is(err, agent.ErrSetup):
		return setupExit(opts, err)
	}
	return err
}

// setupExit makes a supervised worker exit with ExitSetup, so the supervisor
// does not restart it in vain; unsupervised, err keeps its own exit code.
func setupExit(opts *runOptions, err error) error {
	if opts.supervised {
		return exitError{code: exitSetup, err: err}
	}
	return err
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

// executors returns the agent's executors: local; docker when a Docker
// engine answers (DOCKER_HOST, else /var/run/docker.sock); lxd when LXD
// answers on its socket (LXD_SOCKET, else the snap's or the Debian package's).
// Without them the agent reports no Docker / LXD and gets no such jobs.
func executors(ctx context.Context, dataDir string, logger *slog.Logger) map[string]executor.Executor {
	exs := map[string]executor.Executor{
		ci.ExecutorLocal: local.New(dataDir, logger.With("executor", ci.ExecutorLocal)),
	}
	if d, err := docker.New(docker.Config{DataDir: dataDir, Logger: logger.With("executor", ci.ExecutorDocker)}); err != nil {
		logger.Warn("docker executor is off", "err", err)
	} else if caps := d.Capabilities(ctx); caps.Available {
		logger.Info("docker executor is on", "docker_version", caps.Version)
		exs[ci.ExecutorDocker] = d
	} else {
		logger.Info("docker executor is off: no Docker engine answers (set DOCKER_HOST or start dockerd)")
	}
	if l, err := lxd.New(lxd.Config{DataDir: dataDir, Logger: logger.With("executor", ci.ExecutorLXD)}); err != nil {
		logger.Warn("lxd executor is off", "err", err)
	} else if caps := l.Capabilities(ctx); caps.Available {
		logger.Info("lxd executor is on", "lxd_version", caps.Version)
		exs[ci.ExecutorLXD] = l
	} else {
		logger.Debug("lxd executor is off: LXD does not answer (set LXD_SOCKET or start lxd)", "socket", lxd.SocketPath())
	}
	return exs
}
