// Package login implements `kk login`, which exchanges a user name and
// password for an API token and stores server and token in the config file.
package login

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/config"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/client"
)

// Options are the inputs of `kk login`.
type Options struct {
	IO         *iostreams.IOStreams
	Server     func() (string, error)
	NewClient  func(server string) (*client.Client, error)
	ConfigPath func() (string, error)

	User          string
	PasswordStdin bool
}

// NewCmdLogin returns `kk login`.
func NewCmdLogin(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{
		IO:     f.IOStreams,
		Server: f.Server,
		NewClient: func(server string) (*client.Client, error) {
			return client.New(server, "", client.WithHTTPClient(f.HTTPClient), client.WithUserAgent("kk/"+f.Build.Version))
		},
		ConfigPath: f.ConfigPath,
	}
	cmd := &cobra.Command{
		Use:   "login --server URL --user NAME [--password-stdin]",
		Short: "Log in to a kkd server and remember it",
		Long: `Log in with a user name and password. The server URL and the API token the
server issues are stored in the config file ($KK_CONFIG, default
~/.config/kk/config.yaml, mode 0600); later commands use them.

Without --password-stdin the password is asked for without echo, which needs
a terminal.`,
		Example: `  echo "$PASSWORD" | kk login --server http://ci.example.com:6363 --user admin --password-stdin`,
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !opts.PasswordStdin && !opts.IO.IsStdinTTY() {
				return cmdutil.UsageErrorf("stdin is not a terminal: pass the password with --password-stdin")
			}
			if opts.User == "" && !opts.IO.CanPrompt() {
				return cmdutil.UsageErrorf("missing --user NAME")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return loginRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.User, "user", "u", "", "user name")
	cmd.Flags().BoolVar(&opts.PasswordStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func loginRun(ctx context.Context, opts *Options) error {
	server, err := opts.Server()
	if err != nil {
		return err
	}
	in := bufio.NewReader(opts.IO.In)
	if opts.User == "" {
		fmt.Fprint(opts.IO.ErrOut, "User: ")
		line, err := in.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read user name: %w", err)
		}
		opts.User = strings.TrimSpace(line)
		if opts.User == "" {
			return cmdutil.UsageErrorf("missing user name: pass --user NAME")
		}
	}
	var password string
	if opts.PasswordStdin {
		b, err := io.ReadAll(in)
		if err != nil {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	} else {
		password, err = opts.IO.ReadPassword("Password: ")
		if err != nil {
			return err
		}
	}
	if password == "" {
		return cmdutil.UsageErrorf("empty password")
	}
	c, err := opts.NewClient(server)
	if err != nil {
		return err
	}
	resp, err := c.Login(ctx, opts.User, password)
	var ae *api.Error
	if errors.As(err, &ae) && (ae.Code == api.CodeUnauthorized || ae.Code == api.CodeForbidden) {
		return fmt.Errorf("login to %s as %s failed: %s: check the user name and password", server, opts.User, ae.Message)
	}
	if err != nil {
		return fmt.Errorf("login to %s: %w", server, err)
	}
	path, err := opts.ConfigPath()
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	cfg.Server, cfg.Token = server, resp.Token
	if err := config.Save(path, cfg); err != nil {
		return err
	}
	name := resp.User.Name
	if name == "" {
		name = opts.User
	}
	fmt.Fprintf(opts.IO.ErrOut, "logged in to %s as %s; token stored in %s\n", server, name, path)
	return nil
}
