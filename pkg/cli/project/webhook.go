package project

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// WebhookOptions are the inputs of `kk project webhook`.
type WebhookOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Project string // name or id
	Rotate  bool
	// URL is kkd's address as the forges reach it ("": the server kk uses).
	URL string
}

// WebhookInfo is what `kk project webhook -o json` prints.
type WebhookInfo struct {
	Project string            `json:"project"`
	Secret  string            `json:"secret"`
	Created bool              `json:"created"`
	URLs    map[string]string `json:"urls"`
}

// NewCmdWebhook returns `kk project webhook PROJECT`.
func NewCmdWebhook(f *factory.Factory, runF func(context.Context, *WebhookOptions) error) *cobra.Command {
	opts := &WebhookOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "webhook PROJECT",
		Short: "Show the webhook URLs and secret of a project, and how to set them up in GitHub, GitLab and Gitea",
		Long: `Show the webhook URLs and secret of a project (the secret is created on first use).

A push to a repository branch starts a CI flow on every branch of the project
whose repo branch is that branch (feature/x included); a pull or merge request
opened, reopened or given new commits starts a DEV flow on the branches that
track its base branch. Deliveries must be signed with the secret; a repeated
delivery starts nothing. See docs/webhooks.md.`,
		Example:           "  kk project webhook demo\n  kk project webhook demo --url https://ci.example.com\n  kk project webhook demo --rotate",
		Args:              cmdutil.ExactArgs(1, "missing project: kk project webhook PROJECT"),
		ValidArgsFunction: cmdutil.CompleteProjects(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Project = args[0]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return webhookRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Rotate, "rotate", false, "replace the secret with a new one (give it to every forge again)")
	cmd.Flags().StringVar(&opts.URL, "url", "", "kkd's public URL as the forges reach it (default: kkd's --public-url, else the server kk talks to)")
	return cmd
}

func webhookRun(ctx context.Context, opts *WebhookOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if opts.URL != "" {
		if err := checkBaseURL(opts.URL); err != nil {
			return err
		}
	}
	setup, err := c.WebhookSetup(ctx, opts.Project, opts.Rotate)
	if err != nil {
		return fmt.Errorf("webhook of project %q: %w", opts.Project, err)
	}
	// --url, else kkd's --public-url, else the address kk talks to.
	base := opts.URL
	if base == "" {
		base = setup.PublicURL
	}
	if base == "" {
		base = c.BaseURL()
	}
	if err := checkBaseURL(base); err != nil {
		return err
	}
	base = strings.TrimSuffix(base, "/")
	info := WebhookInfo{Project: setup.Project, Secret: setup.Secret, Created: setup.Created, URLs: map[string]string{}}
	for forge, p := range setup.Paths {
		info.URLs[forge] = base + p
	}
	if opts.Rotate {
		fmt.Fprintf(opts.IO.ErrOut, "rotated the webhook secret of %s: the old one no longer works, give the new one to every forge\n", setup.Project)
	}
	if opts.Format != output.Table {
		return output.Write(opts.IO.Out, opts.Format, info)
	}
	return printWebhook(opts.IO.Out, info)
}

func printWebhook(w io.Writer, info WebhookInfo) error {
	_, err := fmt.Fprintf(w, `Webhooks of project %[1]s

Secret: %[2]s

GitHub (repository Settings > Webhooks > Add webhook)
  Payload URL:   %[3]s
  Content type:  application/json
  Secret:        the secret above
  Events:        "Let me select individual events": Pushes, Pull requests

GitLab (project Settings > Webhooks > Add new webhook)
  URL:           %[4]s
  Secret token:  the secret above
  Trigger:       Push events (all branches), Merge request events

Gitea / Forgejo (repository Settings > Webhooks > Add webhook > Gitea)
  Target URL:    %[5]s
  HTTP method:   POST, content type application/json
  Secret:        the secret above
  Trigger on:    Custom events: Push, Pull Request, Pull Request Synchronized

A push starts a CI flow on every branch of %[1]s whose repo branch is the pushed
branch; a pull request a DEV flow on the branches tracking its base branch.
The forge must reach kkd at these URLs (use --url for kkd's public address).
`, info.Project, info.Secret, info.URLs["github"], info.URLs["gitlab"], info.URLs["gitea"])
	return err
}

func checkBaseURL(base string) error {
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cmdutil.UsageErrorf("--url %q: give kkd's address, like https://ci.example.com", base)
	}
	return nil
}
