package agentinstall_test

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/agentcmd"
	"github.com/kraken-go/kk/pkg/agentinstall"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := agentinstall.Options{Server: "http://kkd.example.com:6363"}
	tests := []struct {
		name string
		edit func(*agentinstall.Options)
		err  string // "" = valid
	}{
		{"defaults", func(o *agentinstall.Options) {}, ""},
		{"everything", func(o *agentinstall.Options) {
			o.Server, o.DataDir, o.User = "https://[::1]:8443/", "/srv/ci/kkagent", "ci_agent"
			o.Groups, o.Name, o.RegistrationKey = []string{"linux", "docker.x86-64"}, "host-1", "aB3+/=_-.~"
			o.UnixGroups, o.Arch = []string{"docker", "kvm"}, "arm64"
		}, ""},
		{"no server", func(o *agentinstall.Options) { o.Server = "" }, "no server: pass --server URL"},
		{"server scheme", func(o *agentinstall.Options) { o.Server = "kkd:6363" }, "want an http:// or https:// URL"},
		{"server user", func(o *agentinstall.Options) { o.Server = "http://u:p@kkd" }, "want an http:// or https:// URL"},
		{"server query", func(o *agentinstall.Options) { o.Server = "http://kkd/?x=1" }, "want an http:// or https:// URL"},
		{"server newline", func(o *agentinstall.Options) { o.Server = "http://kkd\nExecStart=/bin/evil" }, "want an http:// or https:// URL"},
		{"relative data dir", func(o *agentinstall.Options) { o.DataDir = "data" }, "want an absolute path"},
		{"unclean data dir", func(o *agentinstall.Options) { o.DataDir = "/srv/a/../b" }, "not a clean path"},
		{"trailing slash", func(o *agentinstall.Options) { o.DataDir = "/srv/kkagent/" }, "not a clean path"},
		{"data dir /var/lib", func(o *agentinstall.Options) { o.DataDir = "/var/lib" }, "a system directory"},
		{"data dir /srv", func(o *agentinstall.Options) { o.DataDir = "/srv" }, "a system directory"},
		{"data dir in /etc", func(o *agentinstall.Options) { o.DataDir = "/etc/kkagent" }, "inside /etc"},
		{"data dir in /opt/kraken", func(o *agentinstall.Options) { o.DataDir = "/opt/kraken/data" }, "inside /opt/kraken"},
		{"data dir space", func(o *agentinstall.Options) { o.DataDir = "/srv/my agent" }, "want an absolute path"},
		{"user", func(o *agentinstall.Options) { o.User = "Kraken" }, `user "Kraken"`},
		{"unix group", func(o *agentinstall.Options) { o.UnixGroups = []string{"do cker"} }, `unix group "do cker"`},
		{"group", func(o *agentinstall.Options) { o.Groups = []string{"-x"} }, `group "-x"`},
		{"group percent", func(o *agentinstall.Options) { o.Groups = []string{"a%b"} }, `group "a%b"`},
		{"name", func(o *agentinstall.Options) { o.Name = "a b" }, `agent name "a b"`},
		{"key quote", func(o *agentinstall.Options) { o.RegistrationKey = `a"b` }, "registration key"},
		{"key dollar", func(o *agentinstall.Options) { o.RegistrationKey = "a$b" }, "registration key"},
		{"arch", func(o *agentinstall.Options) { o.Arch = "386" }, `architecture "386"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := ok
			tc.edit(&o)
			err := o.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
			_, err = agentinstall.InstallPlan(o)
			require.Error(t, err, "InstallPlan validates")
		})
	}
}

func TestInstallPlanUnit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  agentinstall.Options
		flags []string
	}{
		{"defaults", agentinstall.Options{Server: "http://kkd:6363"}, nil},
		{"groups and name", agentinstall.Options{Server: "http://kkd:6363", User: "ci", Groups: []string{"linux", "docker"}, Name: "host-1"},
			[]string{"--group", "linux", "--group", "docker", "--name", "host-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := agentinstall.InstallPlan(tc.opts)
			require.NoError(t, err)
			f := p.File(agentinstall.UnitPath)
			require.NotNil(t, f)
			assert.Equal(t, os.FileMode(0o644), f.Mode)
			assert.Equal(t, "root", f.Owner)
			assert.True(t, f.Guard)
			assert.Nil(t, f.Masked)
			assert.Contains(t, string(f.Content), agentinstall.Marker)

			u := unitSections(t, f.Content)
			for _, s := range []string{"Unit", "Service", "Install"} {
				require.Contains(t, u, s)
			}
			svc := u["Service"]
			user := tc.opts.User
			if user == "" {
				user = agentinstall.DefaultUser
			}
			assert.Equal(t, []string{user}, svc["User"])
			assert.Equal(t, []string{agentinstall.EnvFilePath}, svc["EnvironmentFile"], "no '-': a missing env file is an error")
			assert.Equal(t, []string{"mixed"}, svc["KillMode"])
			assert.Equal(t, []string{"always"}, svc["Restart"])
			assert.Equal(t, []string{"multi-user.target"}, u["Install"]["WantedBy"])

			// ExecStart runs the supervisor with flags the real kkagent accepts.
			require.Len(t, svc["ExecStart"], 1)
			args := strings.Fields(svc["ExecStart"][0])
			require.Equal(t, []string{agentinstall.BinaryPath, "run"}, args[:2])
			assert.Equal(t, tc.flags, nilIfEmpty(args[2:]))
			root := agentcmd.NewCmdRoot(io.Discard, io.Discard, func(string) string { return "" })
			run, rest, err := root.Find(args[1:])
			require.NoError(t, err)
			require.Equal(t, "run", run.Name())
			require.NoError(t, run.ParseFlags(rest), "ExecStart flags")
			assert.Empty(t, run.Flags().Args(), "stray arguments in ExecStart")
			for i := 0; i+1 < len(tc.flags); i += 2 {
				assert.True(t, run.Flags().Changed(strings.TrimPrefix(tc.flags[i], "--")))
			}
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestInstallPlanEnvFile(t *testing.T) {
	t.Parallel()
	p, err := agentinstall.InstallPlan(agentinstall.Options{
		Server: "https://kkd.example.com/", DataDir: "/srv/kkagent", RegistrationKey: "s3cret-key"})
	require.NoError(t, err)
	f := p.File(agentinstall.EnvFilePath)
	require.NotNil(t, f)
	assert.Equal(t, os.FileMode(0o600), f.Mode, "the env file holds the registration key")
	assert.Equal(t, "root", f.Owner)
	assert.Equal(t, map[string]string{
		"KRAKEN_SERVER_ADDR":       "https://kkd.example.com",
		"KKAGENT_DATA_DIR":         "/srv/kkagent",
		"KKAGENT_REGISTRATION_KEY": "s3cret-key",
	}, envLines(t, f.Content))
	assert.Equal(t, "********", envLines(t, f.Masked)["KKAGENT_REGISTRATION_KEY"])
	assert.NotContains(t, string(f.Masked), "s3cret-key")

	// Every variable is one kkagent run reads.
	var help bytes.Buffer
	root := agentcmd.NewCmdRoot(io.Discard, io.Discard, func(string) string { return "" })
	run, _, err := root.Find([]string{"run"})
	require.NoError(t, err)
	run.SetOut(&help)
	require.NoError(t, run.Help())
	for k := range envLines(t, f.Content) {
		assert.Contains(t, help.String(), k, "kkagent run does not read %s", k)
	}
}

func TestInstallPlanLayout(t *testing.T) {
	t.Parallel()
	p, err := agentinstall.InstallPlan(agentinstall.Options{
		Server: "http://kkd:6363", UnixGroups: []string{"docker", "kvm"}, Arch: "arm64"})
	require.NoError(t, err)
	assert.Equal(t, []agentinstall.Dir{
		{Path: "/opt/kraken", Mode: 0o755, Owner: "kraken"},
		{Path: "/etc/kraken", Mode: 0o755, Owner: "root"},
		{Path: "/var/lib/kkagent", Mode: 0o750, Owner: "kraken"},
	}, p.Dirs)
	assert.Equal(t, &agentinstall.Download{
		Path: "/opt/kraken/kkagent", Mode: 0o755, Owner: "kraken",
		URL:       "http://kkd:6363/install/kkagent?os=linux&arch=arm64",
		SHA256URL: "http://kkd:6363/install/kkagent/sha256?os=linux&arch=arm64",
	}, p.Binary)
	var before, after []string
	for _, c := range p.Before {
		before = append(before, c.String())
	}
	for _, c := range p.After {
		after = append(after, c.String())
	}
	assert.Equal(t, []string{
		"id -u kraken >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/kkagent --no-create-home --shell /usr/sbin/nologin kraken",
		"usermod --append --groups docker,kvm kraken",
	}, before)
	assert.Equal(t, []string{
		"chown kraken: /opt/kraken /var/lib/kkagent /opt/kraken/kkagent",
		"systemctl daemon-reload",
		"systemctl try-restart kkagent.service",
		"systemctl enable --now kkagent.service",
	}, after)
	assert.True(t, p.After[2].OnChange, "an unchanged re-install does not restart the agent")
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	p, err := agentinstall.InstallPlan(agentinstall.Options{
		Server: "http://kkd:6363", RegistrationKey: "s3cret", Groups: []string{"linux"}, Arch: "amd64"})
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, p.Describe(&out, false))
	s := out.String()
	for _, want := range []string{
		"== run:\nid -u kraken >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/kkagent --no-create-home --shell /usr/sbin/nologin kraken\n\n",
		"== directory /opt/kraken (mode 0755, owner kraken)\n\n",
		"== directory /etc/kraken (mode 0755, owner root)\n\n",
		"== directory /var/lib/kkagent (mode 0750, owner kraken)\n\n",
		"== download /opt/kraken/kkagent (mode 0755, owner kraken)\n" +
			"from   http://kkd:6363/install/kkagent?os=linux&arch=amd64\n" +
			"sha256 http://kkd:6363/install/kkagent/sha256?os=linux&arch=amd64 (must match, or nothing is installed)\n\n",
		"== file /etc/kraken/kkagent.env (mode 0600, owner root)\n" + string(p.File(agentinstall.EnvFilePath).Masked) + "\n",
		"== file /etc/systemd/system/kkagent.service (mode 0644, owner root; refused if the file exists and was not written by kk agent install)\n" +
			string(p.File(agentinstall.UnitPath).Content) + "\n",
		"ExecStart=/opt/kraken/kkagent run --group linux\n",
		"== run:\nchown kraken: /opt/kraken /var/lib/kkagent /opt/kraken/kkagent\n\n",
		"== run:\nsystemctl daemon-reload\n\n",
		"== run (only when a file or the binary changed):\nsystemctl try-restart kkagent.service\n\n",
		"== run:\nsystemctl enable --now kkagent.service\n\n",
	} {
		assert.Contains(t, s, want)
	}
	assert.NotContains(t, s, "s3cret", "the key is masked")
	assert.Contains(t, s, "KKAGENT_REGISTRATION_KEY=********\n")
	// In Apply's order.
	assert.Less(t, strings.Index(s, "useradd"), strings.Index(s, "== directory"))
	assert.Less(t, strings.Index(s, "== download"), strings.Index(s, "== file"))
	assert.Less(t, strings.Index(s, "== file"), strings.Index(s, "chown"))

	out.Reset()
	require.NoError(t, p.Describe(&out, true))
	assert.Contains(t, out.String(), "KKAGENT_REGISTRATION_KEY=s3cret\n")
}

func TestDockerRunLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts agentinstall.Options
		want string
	}{
		{"defaults", agentinstall.Options{Server: "http://kkd:6363"},
			"docker run -d --name kkagent --restart unless-stopped -v /var/run/docker.sock:/var/run/docker.sock " +
				"-v /var/lib/kkagent:/var/lib/kkagent -e KRAKEN_SERVER_ADDR=http://kkd:6363 -e KKAGENT_DATA_DIR=/var/lib/kkagent " +
				"kraken/kkagent kkagent run"},
		{"everything", agentinstall.Options{Server: "https://kkd/", DataDir: "/srv/agent", RegistrationKey: "k+y=",
			Groups: []string{"linux", "gpu"}, Name: "box-1", Image: "registry.local/kk/agent:1.2"},
			"docker run -d --name kkagent --restart unless-stopped -v /var/run/docker.sock:/var/run/docker.sock " +
				"-v /srv/agent:/srv/agent -e KRAKEN_SERVER_ADDR=https://kkd -e KKAGENT_DATA_DIR=/srv/agent " +
				"-e KKAGENT_REGISTRATION_KEY=k+y= registry.local/kk/agent:1.2 kkagent run --group linux --group gpu --name box-1"},
		{"quoted", agentinstall.Options{Server: "http://kkd", RegistrationKey: "it's"},
			`docker run -d --name kkagent --restart unless-stopped -v /var/run/docker.sock:/var/run/docker.sock ` +
				`-v /var/lib/kkagent:/var/lib/kkagent -e KRAKEN_SERVER_ADDR=http://kkd -e KKAGENT_DATA_DIR=/var/lib/kkagent ` +
				`-e 'KKAGENT_REGISTRATION_KEY=it'\''s' kraken/kkagent kkagent run`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, agentinstall.DockerRunLine(tc.opts))
		})
	}
}

func TestCheckHost(t *testing.T) {
	t.Parallel()
	err := agentinstall.CheckHost(1000)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "run as root, e.g. with sudo, or use --dry-run")
}
