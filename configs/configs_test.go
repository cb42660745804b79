// Package configs holds example configuration files, systemd units and the
// like. This test checks that every file here is accepted by the program it
// configures, so the examples cannot rot.
package configs

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/agentcmd"
	"github.com/kraken-go/kk/pkg/agentinstall"
	"github.com/kraken-go/kk/pkg/cli/config"
	"github.com/kraken-go/kk/pkg/daemon"
)

var update = flag.Bool("update", false, "rewrite the files kk agent install generates")

// TestEveryFileIsChecked fails when a file is added here without a check.
func TestEveryFileIsChecked(t *testing.T) {
	t.Parallel()
	checked := map[string]bool{
		"configs_test.go":         true,
		"kk-config.yaml.example":  true,
		"kkd.env.example":         true,
		"kkagent.env.example":     true,
		"systemd/kkd.service":     true,
		"systemd/kkagent.service": true,
	}
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		require.True(t, checked[p], "configs/%s has no check in configs_test.go: add one", p)
		return nil
	})
	require.NoError(t, err)
}

func TestKKConfig(t *testing.T) {
	t.Parallel()
	c, err := config.Load("kk-config.yaml.example")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(c.Server, "http"), "server: %q", c.Server)
	require.NotEmpty(t, c.Token)
}

// envKeys reads KEY=VALUE lines.
func envKeys(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s: line %q is not KEY=VALUE", path, line)
		keys[k] = v
	}
	require.NoError(t, sc.Err())
	return keys
}

// helpOf returns a command's help text (where its environment variables are named).
func helpOf(t *testing.T, root *cobra.Command, sub string) string {
	t.Helper()
	c, _, err := root.Find([]string{sub})
	require.NoError(t, err)
	var b strings.Builder
	c.SetOut(&b)
	require.NoError(t, c.Help())
	return b.String()
}

func TestEnvFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		help string
	}{
		{"kkd.env.example", helpOf(t, daemon.NewCmdRoot(io.Discard, io.Discard, "test"), "serve")},
		{"kkagent.env.example", helpOf(t, agentcmd.NewCmdRoot(io.Discard, io.Discard, os.Getenv), "run")},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			keys := envKeys(t, tc.file)
			require.NotEmpty(t, keys)
			for k := range keys {
				require.Contains(t, tc.help, k, "%s sets %s, which the program does not read", tc.file, k)
			}
		})
	}
}

// unit parses a systemd unit into section → key → values.
func unit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	u := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: %q is not KEY=VALUE", path, line)
			require.NotEmpty(t, section, "%s: %q is outside a section", path, line)
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file, binary, sub string
		root              *cobra.Command
	}{
		{"systemd/kkd.service", "/usr/local/bin/kkd", "serve", daemon.NewCmdRoot(io.Discard, io.Discard, "test")},
		{"systemd/kkagent.service", agentinstall.BinaryPath, "run", agentcmd.NewCmdRoot(io.Discard, io.Discard, os.Getenv)},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			u := unit(t, tc.file)
			for _, s := range []string{"Unit", "Service", "Install"} {
				require.Contains(t, u, s, "section [%s]", s)
			}
			exec := u["Service"]["ExecStart"]
			require.Len(t, exec, 1)
			args := strings.Fields(exec[0])
			require.Equal(t, tc.binary, args[0])
			require.Equal(t, tc.sub, args[1])
			c, _, err := tc.root.Find(args[1:2])
			require.NoError(t, err)
			flags := args[2:]
			for i, a := range flags { // systemd expands ${VAR}; give it a value
				if strings.HasPrefix(a, "${") {
					flags[i] = "http://kkd.example:6363"
				}
			}
			require.NoError(t, c.ParseFlags(flags), "ExecStart flags of %s", tc.file)
			require.Empty(t, c.Flags().Args(), "stray arguments in ExecStart")
		})
	}
}

// TestAgentInstallerFiles checks that the kkagent unit and env file here are
// exactly what `kk agent install` (and kkd's install script) write, for
// the example's settings. Regenerate them with go test ./configs -update.
func TestAgentInstallerFiles(t *testing.T) {
	p, err := agentinstall.InstallPlan(agentinstall.Options{
		Server: "http://kkd.example.internal:6363", RegistrationKey: "change-me-too"})
	require.NoError(t, err)
	for file, path := range map[string]string{
		"systemd/kkagent.service": agentinstall.UnitPath,
		"kkagent.env.example":     agentinstall.EnvFilePath,
	} {
		want := p.File(path).Content
		if *update {
			require.NoError(t, os.WriteFile(file, want, 0o644))
		}
		got, err := os.ReadFile(file)
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got),
			"configs/%s differs from what kk agent install writes to %s: run go test ./configs -update\nwant:\n%s", file, path, want)
	}
}
