package agentinstall_test

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/agentinstall"
)

func TestScriptSyntax(t *testing.T) {
	t.Parallel()
	for _, server := range []string{"http://kkd.example.com:6363", "", "http://x'; rm -rf / #"} {
		path := filepath.Join(t.TempDir(), "install.sh")
		require.NoError(t, os.WriteFile(path, []byte(agentinstall.Script(server)), 0o644))
		out, err := exec.Command("sh", "-n", path).CombinedOutput()
		require.NoError(t, err, "sh -n: %s", out)
	}
	// A server URL that is not usable is not baked in.
	assert.NotContains(t, agentinstall.Script("http://x'; rm -rf / #"), "rm -rf /")
	assert.Contains(t, agentinstall.Script("http://kkd:6363/"), "\ndefault_server=http://kkd:6363\n")
}

// shims are the host commands the script runs, recording their arguments
// to $KK_SHIM_LOG: id says no user exists.
var shims = []string{"id", "useradd", "usermod", "chown", "systemctl"}

const shim = `#!/bin/sh
{ printf '%s' "${0##*/}"; for a in "$@"; do printf '\t%s' "$a"; done; printf '\n'; } >>"$KK_SHIM_LOG"
[ "${0##*/}" != id ]
`

// scriptRun is one run of the install script.
type scriptRun struct {
	destdir string
	ran     [][]string // host commands, DESTDIR stripped from their arguments
	stderr  string
	err     error
}

// runScript runs the install script served for baked against DESTDIR with
// the recording shims first on PATH. With onlyWget the PATH holds only
// the tools the script needs, and wget rather than curl.
func runScript(t *testing.T, script string, env map[string]string, onlyWget bool, prepare func(destdir string)) scriptRun {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	destdir := filepath.Join(dir, "root")
	require.NoError(t, os.Mkdir(bin, 0o755))
	require.NoError(t, os.Mkdir(destdir, 0o755))
	if prepare != nil {
		prepare(destdir)
	}
	for _, s := range shims {
		require.NoError(t, os.WriteFile(filepath.Join(bin, s), []byte(shim), 0o755))
	}
	path := bin + string(os.PathListSeparator) + os.Getenv("PATH")
	if onlyWget {
		for _, tool := range []string{"uname", "grep", "mktemp", "rm", "awk", "sha256sum", "mkdir", "chmod", "cat", "mv", "dirname", "wget"} {
			p, err := exec.LookPath(tool)
			require.NoError(t, err, "the install script needs %s", tool)
			require.NoError(t, os.Symlink(p, filepath.Join(bin, tool)))
		}
		path = bin
	}
	scriptPath := filepath.Join(dir, "kraken-agent-install.sh")
	require.NoError(t, os.WriteFile(scriptPath, []byte(script), 0o644))
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	log := filepath.Join(dir, "shim.log")
	cmd := exec.CommandContext(t.Context(), sh, scriptPath)
	cmd.Env = []string{"PATH=" + path, "HOME=" + dir, "TMPDIR=" + t.TempDir(), "DESTDIR=" + destdir, "KK_SHIM_LOG=" + log}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	r := scriptRun{destdir: destdir, err: cmd.Run(), stderr: stderr.String()}
	b, err := os.ReadFile(log)
	if err == nil {
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			args := strings.Split(line, "\t")
			for i, a := range args {
				if strings.HasPrefix(a, destdir+"/") {
					args[i] = strings.TrimPrefix(a, destdir)
				}
			}
			r.ran = append(r.ran, args)
		}
	}
	return r
}

// normalize drops the modes of directories the plan does not own: missing
// parents follow the umask, which sh sets and the test process inherits.
func normalize(tr map[string]entry, p *agentinstall.Plan) map[string]entry {
	owned := map[string]bool{}
	for _, d := range p.Dirs {
		owned[d.Path] = true
	}
	for k, e := range tr {
		if e.Mode.IsDir() && !owned[k] {
			tr[k] = entry{Mode: fs.ModeDir}
		}
	}
	return tr
}

// TestScriptInstallsWhatPlanInstalls runs the script for real (with
// recording shims for the host commands) and compares what it wrote and
// ran with InstallPlan + Apply for the same settings, byte for byte.
func TestScriptInstallsWhatPlanInstalls(t *testing.T) {
	t.Parallel()
	const group = "root:x:0:\ndocker:x:998:\n"
	tests := []struct {
		name     string
		env      map[string]string
		opts     func(server string) agentinstall.Options
		etcGroup bool // DESTDIR/etc/group has a docker group
		onlyWget bool
	}{
		{name: "defaults",
			opts: func(s string) agentinstall.Options { return agentinstall.Options{Server: s} }},
		{name: "every setting",
			env: map[string]string{
				"KKAGENT_REGISTRATION_KEY": "k3y+/=_-.~", "KKAGENT_GROUPS": "linux, docker,gpu", "KKAGENT_NAME": "host-1",
				"KKAGENT_DATA_DIR": "/srv/ci/kkagent", "KKAGENT_USER": "ci", "KKAGENT_UNIX_GROUPS": "docker,kvm",
			},
			opts: func(s string) agentinstall.Options {
				return agentinstall.Options{Server: s, RegistrationKey: "k3y+/=_-.~", Groups: []string{"linux", "docker", "gpu"},
					Name: "host-1", DataDir: "/srv/ci/kkagent", User: "ci", UnixGroups: []string{"docker", "kvm"}}
			}},
		{name: "docker group found", etcGroup: true,
			opts: func(s string) agentinstall.Options {
				return agentinstall.Options{Server: s, UnixGroups: []string{"docker"}}
			}},
		{name: "no unix groups asked", etcGroup: true, env: map[string]string{"KKAGENT_UNIX_GROUPS": ""},
			opts: func(s string) agentinstall.Options { return agentinstall.Options{Server: s} }},
		{name: "wget", onlyWget: true, env: map[string]string{"KKAGENT_REGISTRATION_KEY": "key"},
			opts: func(s string) agentinstall.Options { return agentinstall.Options{Server: s, RegistrationKey: "key"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newFakeKKD(t)
			prepare := func(root string) {
				if tc.etcGroup {
					require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
					require.NoError(t, os.WriteFile(filepath.Join(root, "etc", "group"), []byte(group), 0o644))
				}
			}
			r := runScript(t, agentinstall.Script(k.URL), tc.env, tc.onlyWget, prepare)
			require.NoError(t, r.err, "script failed: %s", r.stderr)
			assert.Contains(t, r.stderr, "kkagent is installed and running")

			o := tc.opts(k.URL)
			o.Arch = runtime.GOARCH
			p, err := agentinstall.InstallPlan(o)
			require.NoError(t, err)
			root := t.TempDir()
			prepare(root)
			rec := &agentinstall.Recorder{}
			require.NoError(t, p.Apply(t.Context(), root, rec, agentinstall.HTTPFetcher{}))

			assert.Equal(t, normalize(tree(t, root), p), normalize(tree(t, r.destdir), p), "files the script wrote")
			assert.Equal(t, rec.Ran(), r.ran, "commands the script ran")
		})
	}
}

func TestScriptServerFromEnvironment(t *testing.T) {
	t.Parallel()
	k := newFakeKKD(t)
	// The URL baked in is the default; KRAKEN_SERVER_ADDR wins.
	r := runScript(t, agentinstall.Script("http://kkd.invalid:1"),
		map[string]string{"KRAKEN_SERVER_ADDR": k.URL + "//"}, false, nil)
	require.NoError(t, r.err, r.stderr)
	env, err := os.ReadFile(filepath.Join(r.destdir, agentinstall.EnvFilePath))
	require.NoError(t, err)
	assert.Equal(t, k.URL, envLines(t, env)["KRAKEN_SERVER_ADDR"])

	// Without a usable baked URL the variable is required.
	r = runScript(t, agentinstall.Script(""), nil, false, nil)
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "no server: set KRAKEN_SERVER_ADDR")
}

// TestScriptRefuses checks that the script rejects what InstallPlan
// rejects, and then changes nothing and runs nothing.
func TestScriptRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		edit    func(*agentinstall.Options) // the same setting for InstallPlan; nil: not a setting
		corrupt bool                        // the server's digest is wrong
		unit    bool                        // a foreign kkagent.service exists
		stderr  string
	}{
		{name: "checksum mismatch", corrupt: true, stderr: "but the server says"},
		{name: "foreign unit", unit: true, stderr: "was not written by kk agent install: remove it, or set KKAGENT_FORCE=1"},
		{name: "data dir /var/lib", env: map[string]string{"KKAGENT_DATA_DIR": "/var/lib"},
			edit: func(o *agentinstall.Options) { o.DataDir = "/var/lib" }, stderr: "a system directory"},
		{name: "data dir /srv", env: map[string]string{"KKAGENT_DATA_DIR": "/srv"},
			edit: func(o *agentinstall.Options) { o.DataDir = "/srv" }, stderr: "a system directory"},
		{name: "data dir in /etc", env: map[string]string{"KKAGENT_DATA_DIR": "/etc/kkagent"},
			edit: func(o *agentinstall.Options) { o.DataDir = "/etc/kkagent" }, stderr: "a system directory"},
		{name: "data dir in /opt/kraken", env: map[string]string{"KKAGENT_DATA_DIR": "/opt/kraken/data"},
			edit: func(o *agentinstall.Options) { o.DataDir = "/opt/kraken/data" }, stderr: "a system directory"},
		{name: "relative data dir", env: map[string]string{"KKAGENT_DATA_DIR": "data"},
			edit: func(o *agentinstall.Options) { o.DataDir = "data" }, stderr: "want an absolute path"},
		{name: "unclean data dir", env: map[string]string{"KKAGENT_DATA_DIR": "/srv/a/../b"},
			edit: func(o *agentinstall.Options) { o.DataDir = "/srv/a/../b" }, stderr: "not a clean path"},
		{name: "key with a quote", env: map[string]string{"KKAGENT_REGISTRATION_KEY": `a"b`},
			edit: func(o *agentinstall.Options) { o.RegistrationKey = `a"b` }, stderr: "registration key"},
		{name: "key with a dollar", env: map[string]string{"KKAGENT_REGISTRATION_KEY": "a$(id)"},
			edit: func(o *agentinstall.Options) { o.RegistrationKey = "a$(id)" }, stderr: "registration key"},
		{name: "group", env: map[string]string{"KKAGENT_GROUPS": "linux,a%b"},
			edit: func(o *agentinstall.Options) { o.Groups = []string{"linux", "a%b"} }, stderr: `group "a%b"`},
		{name: "name", env: map[string]string{"KKAGENT_NAME": "-host"},
			edit: func(o *agentinstall.Options) { o.Name = "-host" }, stderr: `agent name "-host"`},
		{name: "user", env: map[string]string{"KKAGENT_USER": "Root"},
			edit: func(o *agentinstall.Options) { o.User = "Root" }, stderr: `user "Root"`},
		{name: "unix group", env: map[string]string{"KKAGENT_UNIX_GROUPS": "docker,Wheel"},
			edit: func(o *agentinstall.Options) { o.UnixGroups = []string{"docker", "Wheel"} }, stderr: `unix group "Wheel"`},
		{name: "server scheme", env: map[string]string{"KRAKEN_SERVER_ADDR": "ftp://kkd"},
			edit: func(o *agentinstall.Options) { o.Server = "ftp://kkd" }, stderr: "want an http:// or https:// URL"},
		{name: "server user", env: map[string]string{"KRAKEN_SERVER_ADDR": "http://u@kkd"},
			edit: func(o *agentinstall.Options) { o.Server = "http://u@kkd" }, stderr: "no user"},
		{name: "server space", env: map[string]string{"KRAKEN_SERVER_ADDR": "http://kkd x"},
			edit: func(o *agentinstall.Options) { o.Server = "http://kkd x" }, stderr: "no spaces or quotes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newFakeKKD(t)
			if tc.corrupt {
				k.Set(runtime.GOARCH, k.Binary(runtime.GOARCH), strings.Repeat("0", 64))
			}
			if tc.edit != nil {
				o := agentinstall.Options{Server: k.URL}
				tc.edit(&o)
				require.Error(t, o.Validate(), "InstallPlan must reject it too")
			}
			env := map[string]string{"KRAKEN_SERVER_ADDR": k.URL}
			for key, v := range tc.env {
				env[key] = v
			}
			var foreign string
			r := runScript(t, agentinstall.Script(k.URL), env, false, func(root string) {
				if tc.unit {
					foreign = filepath.Join(root, agentinstall.UnitPath)
					require.NoError(t, os.MkdirAll(filepath.Dir(foreign), 0o755))
					require.NoError(t, os.WriteFile(foreign, []byte("[Service]\nExecStart=/bin/other\n"), 0o644))
				}
			})
			require.Error(t, r.err)
			assert.Contains(t, r.stderr, tc.stderr)
			assert.Empty(t, r.ran, "no host command ran")
			got := tree(t, r.destdir)
			if tc.unit {
				assert.Len(t, got, 4, "only the foreign unit and its directories")
			} else {
				assert.Empty(t, got, "nothing written")
			}
		})
	}
}

func TestScriptForce(t *testing.T) {
	t.Parallel()
	k := newFakeKKD(t)
	r := runScript(t, agentinstall.Script(k.URL), map[string]string{"KKAGENT_FORCE": "1"}, false, func(root string) {
		unit := filepath.Join(root, agentinstall.UnitPath)
		require.NoError(t, os.MkdirAll(filepath.Dir(unit), 0o755))
		require.NoError(t, os.WriteFile(unit, []byte("[Service]\nExecStart=/bin/other\n"), 0o644))
	})
	require.NoError(t, r.err, r.stderr)
	b, err := os.ReadFile(filepath.Join(r.destdir, agentinstall.UnitPath))
	require.NoError(t, err)
	assert.Contains(t, string(b), agentinstall.Marker)
}

func TestScriptHandler(t *testing.T) {
	t.Parallel()
	h := agentinstall.ScriptHandler(func(*http.Request) string { return "http://kkd.example.com:6363" })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, agentinstall.ScriptPath, nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "text/x-shellscript; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Equal(t, agentinstall.Script("http://kkd.example.com:6363"), rec.Body.String())

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, agentinstall.ScriptPath, nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Empty(t, rec.Body.String())

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, agentinstall.ScriptPath, nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)

	// Without a URL function, the URL the request came in on.
	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "http://kkd.lan:6363"+agentinstall.ScriptPath, nil)
	agentinstall.ScriptHandler(nil).ServeHTTP(rec, req)
	assert.Contains(t, rec.Body.String(), "\ndefault_server=http://kkd.lan:6363\n")
}
