// Package secret implements `kk secret`: create, list and delete the secrets
// of a project. Values are read from a file or stdin, never from the command
// line (which other users of the host can see), and are never printed.
package secret

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// maxValue bounds what is read as a value (kkd allows 64 KiB).
const maxValue = 64 << 10

// NewCmdSecret returns the `kk secret` command group.
func NewCmdSecret(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "secret <command>",
		Short: "Manage project secrets",
		Long: `Secrets are stored encrypted by kkd and handed to agents only with the jobs that
use them. Stages refer to them as #{secrets.NAME} (simple) or #{secrets.NAME.key}
and #{secrets.NAME.username} (ssh-key); tool parameters ssh-key and access-token
name them. Agents replace every secret value in job output by ***.`,
	})
	cmd.AddCommand(NewCmdCreate(f, nil))
	cmd.AddCommand(NewCmdList(f, nil))
	cmd.AddCommand(NewCmdDelete(f, nil))
	return cmd
}

// CreateOptions are the inputs of `kk secret create`.
type CreateOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Project  string
	Name     string
	Kind     string
	FromFile string
	Username string
	Force    bool
}

// NewCmdCreate returns `kk secret create PROJECT NAME`.
func NewCmdCreate(f *factory.Factory, runF func(context.Context, *CreateOptions) error) *cobra.Command {
	opts := &CreateOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "create PROJECT NAME [--kind simple|ssh-key] [--from-file FILE] [--username USER] [--force]",
		Short: "Create a secret (the value comes from a file or stdin)",
		Long: `Create a secret of a project. The value is read from --from-file or else from
stdin; on a terminal it is asked for without echo. It is never taken from the
command line. One trailing newline of a simple value read from a file or a pipe
is dropped. An ssh-key secret takes a private key without passphrase.`,
		Example: `  kk secret create myproj token < token.txt
  printf '%s' "$TOKEN" | kk secret create myproj token
  kk secret create myproj deploy --kind ssh-key --from-file ~/.ssh/id_ed25519 --username git
  kk secret create myproj token --force --from-file new-token.txt`,
		Args:              cmdutil.ExactArgs(2, "missing project or secret name: kk secret create PROJECT NAME"),
		ValidArgsFunction: cmdutil.FirstArgOnly(cmdutil.CompleteProjects(f)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Project, opts.Name = args[0], args[1]
			opts.Format = f.Output()
			if opts.Kind != api.SecretSimple && opts.Kind != api.SecretSSHKey {
				return cmdutil.UsageErrorf("--kind %q: use %s or %s", opts.Kind, api.SecretSimple, api.SecretSSHKey)
			}
			if opts.Username != "" && opts.Kind != api.SecretSSHKey {
				return cmdutil.UsageErrorf("--username is for --kind ssh-key")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return createRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Kind, "kind", api.SecretSimple, "kind of secret: simple or ssh-key")
	fl.StringVar(&opts.FromFile, "from-file", "", "read the value (or the private key) from this file instead of stdin")
	fl.StringVar(&opts.Username, "username", "", "user name of an ssh-key secret")
	fl.BoolVar(&opts.Force, "force", false, "replace the secret if it exists")
	_ = cmd.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions(
		[]cobra.Completion{api.SecretSimple, api.SecretSSHKey}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// readValue reads the secret's value from the file, a terminal (without
// echo) or stdin.
func readValue(opts *CreateOptions) (string, error) {
	var raw []byte
	switch {
	case opts.FromFile != "":
		f, err := os.Open(opts.FromFile)
		if err != nil {
			return "", fmt.Errorf("read the secret: %w", err)
		}
		defer f.Close()
		if raw, err = io.ReadAll(io.LimitReader(f, maxValue+1)); err != nil {
			return "", fmt.Errorf("read the secret from %s: %w", opts.FromFile, err)
		}
	case opts.IO.IsStdinTTY():
		if opts.Kind == api.SecretSSHKey {
			return "", cmdutil.UsageErrorf("an SSH key cannot be typed in: give it with --from-file KEYFILE or on stdin (< KEYFILE)")
		}
		v, err := opts.IO.ReadPassword(fmt.Sprintf("Value of secret %s: ", opts.Name))
		if err != nil {
			return "", err
		}
		return v, nil
	default:
		var err error
		if raw, err = io.ReadAll(io.LimitReader(opts.IO.In, maxValue+1)); err != nil {
			return "", fmt.Errorf("read the secret from stdin: %w", err)
		}
	}
	if len(raw) > maxValue {
		return "", fmt.Errorf("the secret is larger than %d bytes: kkd does not store larger secrets", maxValue)
	}
	if opts.Kind == api.SecretSimple {
		raw = bytes.TrimSuffix(raw, []byte("\n"))
		raw = bytes.TrimSuffix(raw, []byte("\r"))
	}
	return string(raw), nil
}

func createRun(ctx context.Context, opts *CreateOptions) error {
	value, err := readValue(opts)
	if err != nil {
		return err
	}
	if strings.TrimSpace(value) == "" {
		src := "stdin"
		if opts.FromFile != "" {
			src = opts.FromFile
		}
		return fmt.Errorf("the secret read from %s is empty: give the value in a file (--from-file) or on stdin", src)
	}
	in := api.CreateSecret{Name: opts.Name, Kind: opts.Kind}
	if opts.Kind == api.SecretSSHKey {
		in.Key, in.Username = value, opts.Username
	} else {
		in.Value = value
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var s api.Secret
	verb := "created"
	if opts.Force {
		s, err = c.PutSecret(ctx, opts.Project, in)
		verb = "saved"
	} else {
		s, err = c.CreateSecret(ctx, opts.Project, in)
	}
	if err != nil {
		return fmt.Errorf("create secret %q in project %s: %w", opts.Name, opts.Project, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "%s secret %s (%s) in project %s\n", verb, s.Name, s.Kind, opts.Project)
	if opts.Format != output.Table {
		return output.Write(opts.IO.Out, opts.Format, s)
	}
	return nil
}

// ListOptions are the inputs of `kk secret list`.
type ListOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Project string
}

// NewCmdList returns `kk secret list PROJECT`.
func NewCmdList(f *factory.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "list PROJECT",
		Aliases:           []string{"ls"},
		Short:             "List a project's secrets (names and kinds, never values)",
		Args:              cmdutil.ExactArgs(1, "missing project: kk secret list PROJECT"),
		ValidArgsFunction: cmdutil.FirstArgOnly(cmdutil.CompleteProjects(f)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Project = args[0]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	list, err := c.ListSecrets(ctx, opts.Project)
	if err != nil {
		return fmt.Errorf("list secrets of project %s: %w", opts.Project, err)
	}
	if opts.Format != output.Table {
		return output.Write(opts.IO.Out, opts.Format, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(opts.IO.ErrOut, "project %s has no secrets: create one with `kk secret create %s NAME`\n", opts.Project, opts.Project)
		return nil
	}
	t := output.NewTable(opts.IO, "id", "name", "kind", "updated")
	for _, s := range list {
		t.AddField(fmt.Sprint(s.ID))
		t.AddField(s.Name)
		t.AddField(s.Kind)
		t.AddField(s.Updated.Local().Format("2006-01-02 15:04:05"))
		t.EndRow()
	}
	return t.Render()
}

// DeleteOptions are the inputs of `kk secret delete`.
type DeleteOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)

	Project string
	Name    string
}

// NewCmdDelete returns `kk secret delete PROJECT NAME`.
func NewCmdDelete(f *factory.Factory, runF func(context.Context, *DeleteOptions) error) *cobra.Command {
	opts := &DeleteOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "delete PROJECT NAME",
		Aliases:           []string{"rm"},
		Short:             "Delete a secret",
		Args:              cmdutil.ExactArgs(2, "missing project or secret name: kk secret delete PROJECT NAME"),
		ValidArgsFunction: cmdutil.FirstArgOnly(cmdutil.CompleteProjects(f)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Project, opts.Name = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return deleteRun(cmd.Context(), opts)
		},
	}
}

func deleteRun(ctx context.Context, opts *DeleteOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.DeleteSecret(ctx, opts.Project, opts.Name); err != nil {
		return fmt.Errorf("delete secret %q of project %s: %w", opts.Name, opts.Project, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "deleted secret %s of project %s\n", opts.Name, opts.Project)
	return nil
}
