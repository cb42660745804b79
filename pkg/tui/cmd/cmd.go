// Package cmd is `kk tui`: it resolves the server and token like every kk
// command, opens the TUI's log file and runs pkg/tui on the terminal.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/client"
	"github.com/kraken-go/kk/pkg/tui"
)

// Options are the inputs of `kk tui`.
type Options struct {
	IO      *iostreams.IOStreams
	Client  func() (*client.Client, error)
	LogFile string
	NoColor bool
}

// NewCmdTUI returns `kk tui`.
func NewCmdTUI(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Browse and drive the server in a terminal UI",
		Long: `Open a terminal UI on the server: projects, branches, the CI and DEV
flows of a branch with a box per run (a branch picker, a form to start a
flow with the stages' parameters), a flow's runs and jobs (cancel, rerun,
start a manual run), a run's test results (filters, relevancy sort) and a
test's history, a job's log (followed live, read by ranges, step headers,
search, first error), and agents (authorize, enable, disable, add to and
remove from a group, delete) and groups (create, delete, members). Screens
refresh every second. Press ? for the keys, Esc to go back.

The TUI logs to --log-file (default $XDG_STATE_HOME/kk/tui.log, else
~/.local/state/kk/tui.log), never to the screen. NO_COLOR turns colours off.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.LogFile == "" {
				p, err := defaultLogFile(f.Getenv, f.HomeDir)
				if err != nil {
					return err
				}
				opts.LogFile = p
			}
			opts.NoColor = f.Getenv("NO_COLOR") != "" || f.Getenv("TERM") == "dumb"
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.LogFile, "log-file", "", "file the TUI logs to (default $XDG_STATE_HOME/kk/tui.log)")
	return cmd
}

// defaultLogFile is $XDG_STATE_HOME/kk/tui.log, else ~/.local/state/kk/tui.log.
func defaultLogFile(getenv func(string) string, home func() (string, error)) (string, error) {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "kk", "tui.log"), nil
	}
	h, err := home()
	if err != nil {
		return "", fmt.Errorf("locate the TUI log file: %w: pass --log-file", err)
	}
	return filepath.Join(h, ".local", "state", "kk", "tui.log"), nil
}

func run(ctx context.Context, opts *Options) error {
	if !opts.IO.IsStdinTTY() || !opts.IO.IsStdoutTTY() {
		return &cmdutil.UsageError{Err: errors.New("kk tui needs a terminal on stdin and stdout")}
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(opts.LogFile), 0o700); err != nil {
		return fmt.Errorf("create the TUI log directory: %w: pass --log-file", err)
	}
	lf, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the TUI log file: %w: pass --log-file", err)
	}
	defer lf.Close()
	logger := slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	err = tui.Run(ctx, tui.Config{
		Client:   c,
		Logger:   logger,
		Renderer: tui.NewRenderer(opts.IO.Out, opts.NoColor),
		Refresh:  tui.DefaultRefresh,
	}, opts.IO.In, opts.IO.Out)
	if err != nil {
		logger.Error("tui failed", "err", err)
	}
	return err
}
