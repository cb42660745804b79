package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/agentinstall"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
)

// envRegistrationKey is read by kk agent install as well as by kkagent, so
// that a key need not appear on a command line.
const envRegistrationKey = "KKAGENT_REGISTRATION_KEY"

// InstallOptions are the inputs of `kk agent install`.
type InstallOptions struct {
	IO         *iostreams.IOStreams
	HTTPClient *http.Client
	// Server resolves the kkd URL: --server, KK_SERVER, the config file.
	Server func() (string, error)
	// CheckHost checks that a real install (root "/") can proceed.
	CheckHost func() error

	Install agentinstall.Options
	// UnixGroupsSet: --unix-group was given, no default applies.
	UnixGroupsSet bool
	DryRun        bool
	ShowSecrets   bool
	Docker        bool
	// Root is where files go: "/" for a real install.
	Root string
}

// NewCmdInstall returns `kk agent install`.
func NewCmdInstall(f *factory.Factory, runF func(context.Context, *InstallOptions) error) *cobra.Command {
	opts := &InstallOptions{
		IO:         f.IOStreams,
		HTTPClient: f.HTTPClient,
		Server:     func() (string, error) { return installServer(f) },
		CheckHost:  func() error { return agentinstall.CheckHost(os.Geteuid()) },
	}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Set up kkagent on this host as a systemd service",
		Long: `Set up kkagent on this Linux host as a systemd service, as root: a system user
(default kraken, added to the docker group when there is one), the kkagent
binary from kkd in ` + agentinstall.InstallDir + `, the env file ` + agentinstall.EnvFilePath + `
(KRAKEN_SERVER_ADDR, KKAGENT_DATA_DIR, KKAGENT_REGISTRATION_KEY; mode 0600), the
unit ` + agentinstall.UnitPath + ` and the data dir. The binary is verified
against the SHA-256 kkd serves before anything is changed.

Running it again updates the install, restarting the agent only when something
changed. It does not overwrite a kkagent.service it did not write unless --force.

--dry-run prints every file (path, mode, owner, content) and every command and
changes nothing; it needs neither root nor the server. The registration key is
masked in it unless --show-secrets. --docker prints a docker run line for a
containerised agent instead. Hosts without kk can run the same install with
  curl -fsSL SERVER` + agentinstall.ScriptPath + ` | sudo sh`,
		Example: `  kk agent install --server http://kkd.example.com:6363 --dry-run
  sudo kk agent install --server http://kkd.example.com:6363 --group linux --registration-key KEY
  kk agent install --server http://kkd.example.com:6363 --docker`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.UnixGroupsSet = cmd.Flags().Changed("unix-group")
			if !cmd.Flags().Changed("registration-key") {
				opts.Install.RegistrationKey = f.Getenv(envRegistrationKey)
			}
			if opts.Docker && opts.DryRun {
				return cmdutil.UsageErrorf("--docker and --dry-run do not go together: --docker only prints a command")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return installRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Install.DataDir, "data-dir", agentinstall.DefaultDataDir, "the agent's data dir: identity, credential, workspaces")
	fl.StringArrayVarP(&opts.Install.Groups, "group", "g", nil, "group the agent joins when it enrols with the registration key (repeatable)")
	fl.StringVar(&opts.Install.RegistrationKey, "registration-key", "",
		"key that enrols the agent without kk agent authorize (env "+envRegistrationKey+")")
	fl.StringVar(&opts.Install.Name, "name", "", "agent name (default: the host name)")
	fl.StringVar(&opts.Install.User, "user", agentinstall.DefaultUser, "system user the agent runs as, created when missing")
	fl.StringSliceVar(&opts.Install.UnixGroups, "unix-group", nil,
		"supplementary unix group of the user (repeatable; default: "+agentinstall.DockerGroup+" when it exists; --unix-group= for none)")
	fl.StringVar(&opts.Install.Arch, "arch", "", "architecture of the binary, amd64 or arm64 (default: this host's)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print every file and command, change nothing")
	fl.BoolVar(&opts.ShowSecrets, "show-secrets", false, "with --dry-run: print the registration key instead of masking it")
	fl.BoolVar(&opts.Docker, "docker", false, "print the docker run line of a containerised agent and exit")
	fl.StringVar(&opts.Install.Image, "image", agentinstall.DefaultImage, "with --docker: the agent's image")
	fl.BoolVar(&opts.Install.Force, "force", false, "overwrite a kkagent.service that kk agent install did not write")
	fl.StringVar(&opts.Root, "root", "/", "install under this directory; host commands are not run (tests, images)")
	_ = fl.MarkHidden("root")
	_ = cmd.RegisterFlagCompletionFunc("group", cmdutil.CompleteGroups(f))
	_ = cmd.RegisterFlagCompletionFunc("arch", cobra.FixedCompletions(
		[]cobra.Completion{"amd64", "arm64"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// installServer resolves the URL agents use: --server, KK_SERVER, the
// config file. Unlike other commands it has no default: 127.0.0.1 is rarely
// what an agent on another host should use.
func installServer(f *factory.Factory) (string, error) {
	s := f.Flags.Server
	if s == "" {
		s = f.Getenv(factory.EnvServer)
	}
	if s == "" {
		c, err := f.Config()
		if err != nil {
			return "", err
		}
		s = c.Server
	}
	if s == "" {
		return "", cmdutil.UsageErrorf("missing --server URL: the kkd URL the agent connects to, e.g. --server http://kkd.example.com:6363")
	}
	return s, nil
}

func installRun(ctx context.Context, opts *InstallOptions) error {
	server, err := opts.Server()
	if err != nil {
		return err
	}
	o := opts.Install
	o.Server = server
	o.UnixGroups = nonEmpty(o.UnixGroups)
	root := opts.Root
	if root == "" {
		root = "/"
	}
	if opts.Docker {
		o.UnixGroups = nil
		if err := o.Validate(); err != nil {
			return &cmdutil.UsageError{Err: err}
		}
		fmt.Fprintln(opts.IO.Out, agentinstall.DockerRunLine(o))
		fmt.Fprintln(opts.IO.ErrOut, "note: the container gets the Docker socket, which is root access to the host")
		if isLoopback(server) {
			fmt.Fprintf(opts.IO.ErrOut, "warning: %s is the container's own loopback, not the host's: "+
				"use an address of kkd the container can reach, or add --network host\n", server)
		}
		return nil
	}
	if !opts.UnixGroupsSet {
		if ok, err := hasGroup(root, agentinstall.DockerGroup); err != nil {
			return err
		} else if ok {
			o.UnixGroups = []string{agentinstall.DockerGroup}
		}
	}
	plan, err := agentinstall.InstallPlan(o)
	if err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	if opts.DryRun {
		if err := plan.Describe(opts.IO.Out, opts.ShowSecrets); err != nil {
			return err
		}
		fmt.Fprintln(opts.IO.ErrOut, "dry run: nothing was changed; run as root without --dry-run to install")
		return nil
	}

	var run agentinstall.CommandRunner = &agentinstall.Recorder{}
	if root == "/" {
		if err := opts.CheckHost(); err != nil {
			return err
		}
		run = agentinstall.ExecRunner{Stdout: opts.IO.ErrOut, Stderr: opts.IO.ErrOut}
	}
	plan.Progress = opts.IO.ErrOut
	if err := plan.Apply(ctx, root, run, agentinstall.HTTPFetcher{Client: opts.HTTPClient}); err != nil {
		return fmt.Errorf("install kkagent: %w", err)
	}
	if root != "/" {
		fmt.Fprintf(opts.IO.ErrOut, "installed kkagent under %s; the host commands above were not run\n", root)
		return nil
	}
	fmt.Fprintf(opts.IO.ErrOut, "kkagent is installed and running as %s\n"+
		"  status: systemctl status %s\n  logs:   journalctl -u %s -f\n",
		agentinstall.UnitName, agentinstall.UnitName, agentinstall.UnitName)
	if o.RegistrationKey == "" {
		fmt.Fprintln(opts.IO.ErrOut, "it shows up as discovered: see kk agent list --discovered, then kk agent authorize NAME")
	}
	return nil
}

func nonEmpty(s []string) []string {
	var out []string
	for _, v := range s {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// hasGroup reports whether root/etc/group has group name.
func hasGroup(root, name string) (bool, error) {
	f, err := os.Open(filepath.Join(root, "etc", "group"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if g, _, _ := strings.Cut(sc.Text(), ":"); g == name {
			return true, nil
		}
	}
	return false, sc.Err()
}

func isLoopback(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
