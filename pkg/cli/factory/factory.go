// Package factory builds what kk's commands depend on: streams, the config
// file, the API client and the output format. Everything is resolved lazily,
// so `--help` and usage errors never read the config or touch the network.
package factory

import (
	"net/http"
	"os"
	"runtime/debug"
	"strings"

	"github.com/kraken-go/kk/pkg/cli/config"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
	"github.com/kraken-go/kk/pkg/version"
)

// DefaultServer is used when neither --server, KK_SERVER nor the config file
// names a server: kkd's default listen address.
const DefaultServer = "http://127.0.0.1:6363"

// Environment variables kk reads.
const (
	EnvServer = "KK_SERVER"
	EnvToken  = "KK_TOKEN"
)

// GlobalFlags are the root command's persistent flags. The root command binds
// them; commands read them through the Factory.
type GlobalFlags struct {
	Server string
	Token  string
	Output string
}

// BuildInfo describes the kk binary.
type BuildInfo struct {
	Version   string
	Commit    string
	GoVersion string
}

// Factory gives commands their dependencies.
type Factory struct {
	IOStreams *iostreams.IOStreams
	// Getenv reads the environment (os.Getenv; a map in tests).
	Getenv func(string) string
	// HomeDir locates the user's home directory for the default config path.
	HomeDir func() (string, error)
	// HTTPClient is used by the API client; nil means the client's default.
	HTTPClient *http.Client
	Build      BuildInfo
	Flags      GlobalFlags
}

// New returns the factory of the real process.
func New() *Factory {
	return &Factory{
		IOStreams: iostreams.System(os.Getenv),
		Getenv:    os.Getenv,
		HomeDir:   os.UserHomeDir,
		Build:     readBuildInfo(),
	}
}

func readBuildInfo() BuildInfo {
	bi := BuildInfo{Version: version.String()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	bi.GoVersion = info.GoVersion
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			bi.Commit = s.Value
		}
	}
	return bi
}

// ConfigPath returns the config file path ($KK_CONFIG or the default).
func (f *Factory) ConfigPath() (string, error) {
	return config.Path(f.Getenv, f.HomeDir)
}

// Config loads the config file (empty when it does not exist).
func (f *Factory) Config() (*config.Config, error) {
	p, err := f.ConfigPath()
	if err != nil {
		return nil, err
	}
	return config.Load(p)
}

// Server resolves the server URL: --server, KK_SERVER, the config file, the
// default. The result has no trailing slash.
func (f *Factory) Server() (string, error) {
	s := f.Flags.Server
	if s == "" {
		s = f.Getenv(EnvServer)
	}
	if s == "" {
		c, err := f.Config()
		if err != nil {
			return "", err
		}
		s = c.Server
	}
	if s == "" {
		s = DefaultServer
	}
	return normalizeServer(s), nil
}

func normalizeServer(s string) string {
	return strings.TrimRight(strings.TrimSpace(s), "/")
}

// Token resolves the API token: --token, KK_TOKEN, else the config file's
// token, but only when it was issued by server (a token is never sent to a
// server it does not belong to).
func (f *Factory) Token(server string) (string, error) {
	if f.Flags.Token != "" {
		return f.Flags.Token, nil
	}
	if t := f.Getenv(EnvToken); t != "" {
		return t, nil
	}
	c, err := f.Config()
	if err != nil {
		return "", err
	}
	if c.Token != "" && normalizeServer(c.Server) == server {
		return c.Token, nil
	}
	return "", nil
}

// Client returns an API client for the resolved server and token.
func (f *Factory) Client() (*client.Client, error) {
	server, err := f.Server()
	if err != nil {
		return nil, err
	}
	token, err := f.Token(server)
	if err != nil {
		return nil, err
	}
	return client.New(server, token,
		client.WithHTTPClient(f.HTTPClient),
		client.WithUserAgent("kk/"+f.Build.Version))
}

// Output returns the -o format (validated by the root command).
func (f *Factory) Output() output.Format {
	o, err := output.ParseFormat(f.Flags.Output)
	if err != nil {
		return output.Table
	}
	return o
}
