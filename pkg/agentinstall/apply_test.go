package agentinstall_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/agentinstall"
)

func installOpts(server string) agentinstall.Options {
	return agentinstall.Options{
		Server: server, RegistrationKey: "s3cret", Groups: []string{"linux"}, Name: "host-1",
		UnixGroups: []string{"docker"}, Arch: "amd64",
	}
}

// install applies an install plan under a fresh root with a recorder.
func install(t *testing.T, o agentinstall.Options) (string, *agentinstall.Recorder) {
	t.Helper()
	root := t.TempDir()
	rec := &agentinstall.Recorder{}
	p, err := agentinstall.InstallPlan(o)
	require.NoError(t, err)
	require.NoError(t, p.Apply(t.Context(), root, rec, agentinstall.HTTPFetcher{}))
	return root, rec
}

func TestApplyInstall(t *testing.T) {
	t.Parallel()
	k := newFakeKKD(t)
	o := installOpts(k.URL)
	root, rec := install(t, o)
	p, err := agentinstall.InstallPlan(o)
	require.NoError(t, err)

	got := tree(t, root)
	want := map[string]entry{
		"/opt":                                {Mode: fs.ModeDir | 0o755},
		"/opt/kraken":                         {Mode: fs.ModeDir | 0o755},
		"/opt/kraken/kkagent":                 {Mode: 0o755, Content: string(k.Binary("amd64"))},
		"/etc":                                {Mode: fs.ModeDir | 0o755},
		"/etc/kraken":                         {Mode: fs.ModeDir | 0o755},
		"/etc/kraken/kkagent.env":             {Mode: 0o600, Content: string(p.File(agentinstall.EnvFilePath).Content)},
		"/etc/systemd":                        {Mode: fs.ModeDir | 0o755},
		"/etc/systemd/system":                 {Mode: fs.ModeDir | 0o755},
		"/etc/systemd/system/kkagent.service": {Mode: 0o644, Content: string(p.File(agentinstall.UnitPath).Content)},
		"/var":                                {Mode: fs.ModeDir | 0o755},
		"/var/lib":                            {Mode: fs.ModeDir | 0o755},
		"/var/lib/kkagent":                    {Mode: fs.ModeDir | 0o750},
	}
	if umask := currentUmask(t); umask != 0o022 {
		// Missing parents follow the umask, like mkdir -p.
		for p, e := range want {
			if e.Mode.IsDir() && !slicesContains([]string{"/opt/kraken", "/etc/kraken", "/var/lib/kkagent"}, p) {
				e.Mode = fs.ModeDir | 0o755&^umask
				want[p] = e
			}
		}
	}
	assert.Equal(t, want, got)
	env := envLines(t, []byte(got["/etc/kraken/kkagent.env"].Content))
	assert.Equal(t, k.URL, env["KRAKEN_SERVER_ADDR"])
	assert.Equal(t, "s3cret", env["KKAGENT_REGISTRATION_KEY"])
	assert.Contains(t, got["/etc/systemd/system/kkagent.service"].Content,
		"\nExecStart=/opt/kraken/kkagent run --group linux --name host-1\n")

	assert.Equal(t, [][]string{
		{"id", "-u", "kraken"},
		{"useradd", "--system", "--user-group", "--home-dir", "/var/lib/kkagent", "--no-create-home", "--shell", "/usr/sbin/nologin", "kraken"},
		{"usermod", "--append", "--groups", "docker", "kraken"},
		{"chown", "kraken:", "/opt/kraken", "/var/lib/kkagent", "/opt/kraken/kkagent"},
		{"systemctl", "daemon-reload"},
		{"systemctl", "try-restart", "kkagent.service"},
		{"systemctl", "enable", "--now", "kkagent.service"},
	}, rec.Ran())
	assert.Equal(t, []string{
		"/install/kkagent/sha256?os=linux&arch=amd64",
		"/install/kkagent?os=linux&arch=amd64",
	}, k.Requests())
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// currentUmask reads the process umask without changing it.
func currentUmask(t *testing.T) fs.FileMode {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			var m uint32
			for _, c := range strings.TrimSpace(v) {
				m = m*8 + uint32(c-'0')
			}
			return fs.FileMode(m)
		}
	}
	t.Fatal("no Umask in /proc/self/status")
	return 0
}

func TestApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	k := newFakeKKD(t)
	o := installOpts(k.URL)
	root, _ := install(t, o)
	first := tree(t, root)

	// The same install again changes nothing and does not restart the agent.
	rec := &agentinstall.Recorder{Check: func([]string) bool { return true }} // the user exists now
	p, err := agentinstall.InstallPlan(o)
	require.NoError(t, err)
	var progress bytes.Buffer
	p.Progress = &progress
	require.NoError(t, p.Apply(t.Context(), root, rec, agentinstall.HTTPFetcher{}))
	assert.Equal(t, first, tree(t, root))
	assert.Equal(t, [][]string{
		{"id", "-u", "kraken"},
		{"usermod", "--append", "--groups", "docker", "kraken"},
		{"chown", "kraken:", "/opt/kraken", "/var/lib/kkagent", "/opt/kraken/kkagent"},
		{"systemctl", "daemon-reload"},
		{"systemctl", "enable", "--now", "kkagent.service"},
	}, rec.Ran())
	assert.Contains(t, progress.String(), "unchanged /etc/systemd/system/kkagent.service")

	// A changed setting rewrites the unit and restarts the agent.
	o.Groups = []string{"linux", "arm"}
	rec = &agentinstall.Recorder{Check: func([]string) bool { return true }}
	p, err = agentinstall.InstallPlan(o)
	require.NoError(t, err)
	require.NoError(t, p.Apply(t.Context(), root, rec, agentinstall.HTTPFetcher{}))
	unit, err := os.ReadFile(filepath.Join(root, agentinstall.UnitPath))
	require.NoError(t, err)
	assert.Contains(t, string(unit), "ExecStart=/opt/kraken/kkagent run --group linux --group arm --name host-1\n")
	assert.Contains(t, rec.Ran(), []string{"systemctl", "try-restart", "kkagent.service"})

	// So does a new binary on the server.
	k.Set("amd64", []byte("#!/bin/sh\necho fake kkagent amd64 v2\n"), "")
	rec = &agentinstall.Recorder{Check: func([]string) bool { return true }}
	require.NoError(t, p.Apply(t.Context(), root, rec, agentinstall.HTTPFetcher{}))
	bin, err := os.ReadFile(filepath.Join(root, agentinstall.BinaryPath))
	require.NoError(t, err)
	assert.Equal(t, k.Binary("amd64"), bin)
	assert.Contains(t, rec.Ran(), []string{"systemctl", "try-restart", "kkagent.service"})
}

func TestApplyFailuresChangeNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(k *fakeKKD, o *agentinstall.Options)
		err   string
	}{
		{"checksum mismatch", func(k *fakeKKD, o *agentinstall.Options) { k.Set("amd64", k.Binary("amd64"), strings.Repeat("ab", 32)) },
			"but the server says abab"},
		{"digest not hex", func(k *fakeKKD, o *agentinstall.Options) { k.Set("amd64", k.Binary("amd64"), "<html>") },
			"is not a hex SHA-256 digest"},
		{"no binary for the arch", func(k *fakeKKD, o *agentinstall.Options) { k.Set("arm64", nil, ""); o.Arch = "arm64" },
			"404 Not Found"},
		{"server down", func(k *fakeKKD, o *agentinstall.Options) { k.Close() },
			"download http://"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newFakeKKD(t)
			o := installOpts(k.URL)
			tc.setup(k, &o)
			root := t.TempDir()
			rec := &agentinstall.Recorder{}
			p, err := agentinstall.InstallPlan(o)
			require.NoError(t, err)
			err = p.Apply(t.Context(), root, rec, agentinstall.HTTPFetcher{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
			assert.Empty(t, tree(t, root), "nothing written")
			assert.Empty(t, rec.Ran(), "nothing run")
		})
	}
}

func TestApplyRefusesForeignUnit(t *testing.T) {
	t.Parallel()
	k := newFakeKKD(t)
	root := t.TempDir()
	unit := filepath.Join(root, agentinstall.UnitPath)
	require.NoError(t, os.MkdirAll(filepath.Dir(unit), 0o755))
	require.NoError(t, os.WriteFile(unit, []byte("[Service]\nExecStart=/usr/bin/something-else\n"), 0o644))

	o := installOpts(k.URL)
	p, err := agentinstall.InstallPlan(o)
	require.NoError(t, err)
	err = p.Apply(t.Context(), root, &agentinstall.Recorder{}, agentinstall.HTTPFetcher{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "was not written by kk agent install: remove it, or pass --force")
	assert.Len(t, tree(t, root), 4, "only the foreign unit and its directories")

	o.Force = true
	p, err = agentinstall.InstallPlan(o)
	require.NoError(t, err)
	require.NoError(t, p.Apply(t.Context(), root, &agentinstall.Recorder{}, agentinstall.HTTPFetcher{}))
	b, err := os.ReadFile(unit)
	require.NoError(t, err)
	assert.Contains(t, string(b), agentinstall.Marker)
}

func TestApplyRefusesHostCommandsForAnotherRoot(t *testing.T) {
	t.Parallel()
	p, err := agentinstall.InstallPlan(agentinstall.Options{Server: "http://127.0.0.1:1"})
	require.NoError(t, err)
	for _, run := range []agentinstall.CommandRunner{agentinstall.ExecRunner{}, &agentinstall.ExecRunner{}} {
		err = p.Apply(t.Context(), t.TempDir(), run, agentinstall.HTTPFetcher{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "refusing to run commands on this host")
	}
	err = p.Apply(t.Context(), "relative", nil, nil)
	require.ErrorContains(t, err, "not an absolute path")
}

func TestExecRunner(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	r := agentinstall.ExecRunner{}
	ctx := context.Background()
	// Unless succeeds: skipped.
	require.NoError(t, r.Run(ctx, agentinstall.Command{Unless: []string{"true"}, Args: []string{"touch", marker}}))
	assert.NoFileExists(t, marker)
	// If fails: skipped.
	require.NoError(t, r.Run(ctx, agentinstall.Command{If: []string{"false"}, Args: []string{"touch", marker}}))
	assert.NoFileExists(t, marker)
	// Unless fails: run.
	require.NoError(t, r.Run(ctx, agentinstall.Command{Unless: []string{"false"}, Args: []string{"touch", marker}}))
	assert.FileExists(t, marker)
	// A failing command is an error naming it.
	err := r.Run(ctx, agentinstall.Command{Args: []string{"false", "x y"}})
	require.ErrorContains(t, err, "false 'x y': exit status 1")
	// A missing check program is an error, not "fails".
	err = r.Run(ctx, agentinstall.Command{Unless: []string{"/nonexistent/id"}, Args: []string{"true"}})
	require.ErrorContains(t, err, "/nonexistent/id")
}

func TestUninstall(t *testing.T) {
	t.Parallel()
	k := newFakeKKD(t)
	o := installOpts(k.URL)
	o.User, o.DataDir = "ci", "/srv/ci/kkagent"

	tests := []struct {
		name   string
		opts   agentinstall.UninstallOptions
		remain []string
		ran    [][]string
	}{
		{"keep data and user", agentinstall.UninstallOptions{},
			[]string{"/etc", "/etc/systemd", "/etc/systemd/system", "/opt", "/srv", "/srv/ci", "/srv/ci/kkagent", "/srv/ci/kkagent/identity"},
			[][]string{{"systemctl", "disable", "--now", "kkagent.service"}, {"systemctl", "daemon-reload"}}},
		{"purge", agentinstall.UninstallOptions{PurgeData: true, RemoveUser: true},
			[]string{"/etc", "/etc/systemd", "/etc/systemd/system", "/opt", "/srv", "/srv/ci"},
			[][]string{{"systemctl", "disable", "--now", "kkagent.service"}, {"systemctl", "daemon-reload"},
				{"id", "-u", "ci"}, {"userdel", "ci"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, _ := install(t, o)
			require.NoError(t, os.WriteFile(filepath.Join(root, "/srv/ci/kkagent/identity"), []byte("uuid"), 0o600))

			p, err := agentinstall.UninstallPlan(root, tc.opts)
			require.NoError(t, err)
			var desc bytes.Buffer
			require.NoError(t, p.Describe(&desc, false))
			assert.Contains(t, desc.String(), "== remove /opt/kraken (with everything in it)\n")
			assert.Contains(t, desc.String(), "== remove /etc/kraken (when empty)\n")

			rec := &agentinstall.Recorder{Check: func([]string) bool { return true }}
			require.NoError(t, p.Apply(t.Context(), root, rec, nil))
			var remain []string
			for p := range tree(t, root) {
				remain = append(remain, p)
			}
			assert.ElementsMatch(t, tc.remain, remain)
			assert.Equal(t, tc.ran, rec.Ran())

			// Again: nothing left to do.
			p, err = agentinstall.UninstallPlan(root, agentinstall.UninstallOptions{})
			require.NoError(t, err)
			assert.True(t, p.Empty())
		})
	}
}

func TestUninstallGuards(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	unit := filepath.Join(root, agentinstall.UnitPath)
	require.NoError(t, os.MkdirAll(filepath.Dir(unit), 0o755))
	require.NoError(t, os.WriteFile(unit, []byte("[Service]\nExecStart=/usr/bin/other\n"), 0o644))
	_, err := agentinstall.UninstallPlan(root, agentinstall.UninstallOptions{})
	require.ErrorContains(t, err, "was not written by kk agent install: pass --force")
	p, err := agentinstall.UninstallPlan(root, agentinstall.UninstallOptions{Force: true})
	require.NoError(t, err)
	assert.Equal(t, []agentinstall.Removal{{Path: agentinstall.UnitPath}}, p.Remove)

	// A hand-edited data dir that uninstall would delete or must not purge.
	env := filepath.Join(root, agentinstall.EnvFilePath)
	require.NoError(t, os.MkdirAll(filepath.Dir(env), 0o755))
	require.NoError(t, os.WriteFile(env, []byte("KKAGENT_DATA_DIR=/opt/kraken/data\n"), 0o600))
	_, err = agentinstall.UninstallPlan(root, agentinstall.UninstallOptions{Force: true})
	require.ErrorContains(t, err, "inside /opt/kraken, which uninstall deletes")
	require.NoError(t, os.WriteFile(env, []byte("KKAGENT_DATA_DIR=/var\n"), 0o600))
	_, err = agentinstall.UninstallPlan(root, agentinstall.UninstallOptions{Force: true, PurgeData: true})
	require.ErrorContains(t, err, "will not purge")
}
