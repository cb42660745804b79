package agent_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/agentinstall"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

var fakeBinary = []byte("#!/bin/sh\necho fake kkagent\n")

// installServer is a fake kkd serving the kkagent binary for installs (no
// API token: these routes are public). sum, when set, is served instead of
// the binary's digest.
func installServer(t *testing.T, sum string) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var requests []string
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.URL.RequestURI())
		mu.Unlock()
		if r.URL.Query().Get("os") != "linux" || r.URL.Query().Get("arch") != "amd64" {
			http.NotFound(w, r)
			return
		}
		switch r.URL.Path {
		case "/install/kkagent":
			_, _ = w.Write(fakeBinary)
		case "/install/kkagent/sha256":
			if sum == "" {
				d := sha256.Sum256(fakeBinary)
				sum = hex.EncodeToString(d[:])
			}
			_, _ = w.Write([]byte(sum))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), requests...)
	}
}

// files lists the files under root with their modes.
func files(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out["/"+rel] = fi.Mode().Perm()
		return nil
	}))
	return out
}

func TestInstallDryRun(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	res := clitest.NewEnv(t, nil).Run(t, "agent", "install", "--server", "http://kkd.example.com:6363/",
		"--dry-run", "--group", "linux", "-g", "docker", "--name", "build-1", "--registration-key", "s3cret",
		"--arch", "amd64", "--root", root)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)

	p, err := agentinstall.InstallPlan(agentinstall.Options{Server: "http://kkd.example.com:6363",
		Groups: []string{"linux", "docker"}, Name: "build-1", RegistrationKey: "s3cret", Arch: "amd64"})
	require.NoError(t, err)
	for _, want := range []string{
		"id -u kraken >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/kkagent --no-create-home --shell /usr/sbin/nologin kraken\n",
		"== directory /opt/kraken (mode 0755, owner kraken)\n",
		"== directory /var/lib/kkagent (mode 0750, owner kraken)\n",
		"== download /opt/kraken/kkagent (mode 0755, owner kraken)\nfrom   http://kkd.example.com:6363/install/kkagent?os=linux&arch=amd64\n",
		"== file /etc/kraken/kkagent.env (mode 0600, owner root)\n" + string(p.File(agentinstall.EnvFilePath).Masked),
		"== file /etc/systemd/system/kkagent.service (mode 0644, owner root; refused if the file exists and was not written by kk agent install)\n" +
			string(p.File(agentinstall.UnitPath).Content),
		"ExecStart=/opt/kraken/kkagent run --group linux --group docker --name build-1\n",
		"chown kraken: /opt/kraken /var/lib/kkagent /opt/kraken/kkagent\n",
		"systemctl daemon-reload\n",
		"systemctl enable --now kkagent.service\n",
	} {
		assert.Contains(t, res.Stdout, want)
	}
	assert.NotContains(t, res.Stdout, "usermod", "no docker group under root")
	assert.NotContains(t, res.Stdout+res.Stderr, "s3cret", "the key is masked")
	assert.Contains(t, res.Stdout, "KKAGENT_REGISTRATION_KEY=********\n")
	assert.Contains(t, res.Stderr, "dry run: nothing was changed")
	assert.Empty(t, files(t, root), "a dry run writes nothing")
}

func TestInstallDryRunOptions(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\ndocker:x:998:\n"), 0o644))
	tests := []struct {
		name    string
		args    string
		env     map[string]string
		want    []string
		notWant []string
	}{
		{name: "docker group joined when it exists", args: "",
			want: []string{"\nusermod --append --groups docker kraken\n"}},
		{name: "unix groups given", args: "--unix-group kvm --unix-group docker",
			want: []string{"\nusermod --append --groups kvm,docker kraken\n"}},
		{name: "no unix groups", args: "--unix-group=", notWant: []string{"usermod"}},
		{name: "show secrets", args: "--registration-key k3y --show-secrets",
			want: []string{"KKAGENT_REGISTRATION_KEY=k3y\n"}},
		{name: "key from the environment", env: map[string]string{"KKAGENT_REGISTRATION_KEY": "envkey"}, args: "--show-secrets",
			want: []string{"KKAGENT_REGISTRATION_KEY=envkey\n"}},
		{name: "server from the environment", env: map[string]string{"KK_SERVER": "http://kkd.env:1"}, args: "",
			want: []string{"KRAKEN_SERVER_ADDR=http://kkd.env:1\n"}},
		{name: "user and data dir", args: "--user ci --data-dir /srv/ci/agent",
			want: []string{"User=ci\n", "KKAGENT_DATA_DIR=/srv/ci/agent\n", "--home-dir /srv/ci/agent", "== directory /srv/ci/agent (mode 0750, owner ci)\n"}},
		{name: "arm64", args: "--arch arm64", want: []string{"/install/kkagent?os=linux&arch=arm64\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := clitest.NewEnv(t, nil)
			for k, v := range tc.env {
				env.Vars[k] = v
			}
			args := []string{"agent", "install", "--dry-run", "--root", root}
			if tc.env["KK_SERVER"] == "" {
				args = append(args, "--server", "http://kkd:6363")
			}
			res := env.Run(t, append(args, clitest.Args(tc.args)...)...)
			require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
			for _, w := range tc.want {
				assert.Contains(t, res.Stdout, w)
			}
			for _, w := range tc.notWant {
				assert.NotContains(t, res.Stdout, w)
			}
		})
	}
}

func TestInstallDocker(t *testing.T) {
	t.Parallel()
	res := clitest.NewEnv(t, nil).Run(t, "agent", "install", "--server", "http://127.0.0.1:6363", "--docker",
		"--group", "linux", "--registration-key", "k3y", "--image", "local/kkagent:dev")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, "docker run -d --name kkagent --restart unless-stopped -v /var/run/docker.sock:/var/run/docker.sock "+
		"-v /var/lib/kkagent:/var/lib/kkagent -e KRAKEN_SERVER_ADDR=http://127.0.0.1:6363 -e KKAGENT_DATA_DIR=/var/lib/kkagent "+
		"-e KKAGENT_REGISTRATION_KEY=k3y local/kkagent:dev kkagent run --group linux\n", res.Stdout)
	assert.Contains(t, res.Stderr, "the container gets the Docker socket")
	assert.Contains(t, res.Stderr, "is the container's own loopback")
}

func TestInstallIntoRootAndUninstall(t *testing.T) {
	t.Parallel()
	srv, requests := installServer(t, "")
	root := t.TempDir()
	env := clitest.NewEnv(t, nil)
	res := env.Run(t, "agent", "install", "--server", srv.URL, "--arch", "amd64", "--registration-key", "s3cret",
		"--group", "linux", "--unix-group=", "--root", root)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Empty(t, res.Stdout)
	assert.Equal(t, map[string]fs.FileMode{
		"/opt/kraken/kkagent":                 0o755,
		"/etc/kraken/kkagent.env":             0o600,
		"/etc/systemd/system/kkagent.service": 0o644,
	}, files(t, root))
	bin, err := os.ReadFile(filepath.Join(root, agentinstall.BinaryPath))
	require.NoError(t, err)
	assert.Equal(t, fakeBinary, bin)
	envFile, err := os.ReadFile(filepath.Join(root, agentinstall.EnvFilePath))
	require.NoError(t, err)
	assert.Contains(t, string(envFile), "KRAKEN_SERVER_ADDR="+srv.URL+"\n")
	assert.Contains(t, string(envFile), "KKAGENT_REGISTRATION_KEY=s3cret\n")
	fi, err := os.Stat(filepath.Join(root, agentinstall.DefaultDataDir))
	require.NoError(t, err)
	assert.Equal(t, fs.ModeDir|0o750, fi.Mode()&(fs.ModeDir|fs.ModePerm))
	assert.Equal(t, []string{"/install/kkagent/sha256?os=linux&arch=amd64", "/install/kkagent?os=linux&arch=amd64"}, requests())
	for _, c := range []string{"id -u kraken >/dev/null 2>&1 || useradd --system", "chown kraken: /opt/kraken /var/lib/kkagent /opt/kraken/kkagent",
		"systemctl daemon-reload", "systemctl enable --now kkagent.service"} {
		assert.Contains(t, res.Stderr, "host command (install root "+root+"): "+c)
	}
	assert.Contains(t, res.Stderr, "installed kkagent under "+root)
	assert.NotContains(t, res.Stderr, "s3cret")

	// Uninstall, dry run first: it lists what goes and changes nothing.
	res = env.Run(t, "agent", "uninstall", "--dry-run", "--root", root)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, "== run:\nsystemctl disable --now kkagent.service\n\n"+
		"== remove /etc/systemd/system/kkagent.service\n\n"+
		"== remove /etc/kraken/kkagent.env\n\n"+
		"== remove /etc/kraken (when empty)\n\n"+
		"== remove /opt/kraken (with everything in it)\n\n"+
		"== run:\nsystemctl daemon-reload\n\n", res.Stdout)
	assert.Len(t, files(t, root), 3)

	res = env.Run(t, "agent", "uninstall", "--root", root)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Empty(t, files(t, root))
	assert.DirExists(t, filepath.Join(root, agentinstall.DefaultDataDir), "the data dir is kept")
	assert.NoDirExists(t, filepath.Join(root, agentinstall.InstallDir))
	assert.Contains(t, res.Stderr, "host command (install root "+root+"): systemctl disable --now kkagent.service")
	assert.Contains(t, res.Stderr, "the data dir is kept (--purge-data deletes it)")

	res = env.Run(t, "agent", "uninstall", "--root", root, "--purge-data", "--remove-user")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.NoDirExists(t, filepath.Join(root, agentinstall.DefaultDataDir))
	assert.Contains(t, res.Stderr, "host command (install root "+root+"): id -u kraken >/dev/null 2>&1 && userdel kraken")

	res = env.Run(t, "agent", "uninstall", "--root", root)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stderr, "kkagent is not installed under "+root)
}

func TestInstallFailures(t *testing.T) {
	t.Parallel()
	t.Run("checksum mismatch", func(t *testing.T) {
		t.Parallel()
		srv, _ := installServer(t, strings.Repeat("0", 64))
		root := t.TempDir()
		res := clitest.NewEnv(t, nil).Run(t, "agent", "install", "--server", srv.URL, "--arch", "amd64", "--root", root)
		assert.Equal(t, cmdutil.ExitError, res.Code)
		assert.Contains(t, res.Stderr, "error: install kkagent: kkagent from "+srv.URL)
		assert.Contains(t, res.Stderr, "nothing was installed")
		assert.Empty(t, files(t, root))
	})
	t.Run("foreign unit", func(t *testing.T) {
		t.Parallel()
		srv, _ := installServer(t, "")
		root := t.TempDir()
		unit := filepath.Join(root, agentinstall.UnitPath)
		require.NoError(t, os.MkdirAll(filepath.Dir(unit), 0o755))
		require.NoError(t, os.WriteFile(unit, []byte("[Service]\nExecStart=/bin/other\n"), 0o644))
		env := clitest.NewEnv(t, nil)
		res := env.Run(t, "agent", "install", "--server", srv.URL, "--arch", "amd64", "--root", root)
		assert.Equal(t, cmdutil.ExitError, res.Code)
		assert.Contains(t, res.Stderr, "was not written by kk agent install: remove it, or pass --force")
		res = env.Run(t, "agent", "uninstall", "--root", root)
		assert.Equal(t, cmdutil.ExitError, res.Code)
		assert.Contains(t, res.Stderr, "pass --force to remove it anyway")

		res = env.Run(t, "agent", "install", "--server", srv.URL, "--arch", "amd64", "--root", root, "--force")
		require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	})
}

func TestInstallUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ args, stderr string }{
		{"agent install --dry-run", "missing --server URL"},
		{"agent install --server kkd:6363 --dry-run", "want an http:// or https:// URL"},
		{"agent install --server http://kkd --dry-run --group a%b", `group "a%b"`},
		{"agent install --server http://kkd --dry-run --data-dir /var", "a system directory"},
		{"agent install --server http://kkd --dry-run --user Root", `user "Root"`},
		{"agent install --server http://kkd --dry-run --arch 386", `architecture "386"`},
		{"agent install --server http://kkd --docker --dry-run", "--docker and --dry-run do not go together"},
		{"agent install --server http://kkd --docker --name a/b", `agent name "a/b"`},
		{"agent install extra --server http://kkd", "takes no arguments"},
		{"agent uninstall extra", "takes no arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			t.Parallel()
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(tc.args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
			assert.Contains(t, res.Stderr, tc.stderr)
		})
	}
}
