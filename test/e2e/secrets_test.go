package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// secretsStage prints the project's secrets in the ways a build leaks them.
const secretsStage = `def stage(ctx):
    tok = {"TOKEN": "#{secrets.token}"}
    return {
        "parent": "root",
        "jobs": [{
            "name": "leaky",
            "timeout": 120,
            "steps": [
                {"tool": "shell", "cmd": "echo raw=$TOKEN", "env": tok},
                {"tool": "shell", "shell_exe": "/bin/bash", "env": tok,
                 "cmd": 'for ((i=0; i<${#TOKEN}; i++)); do printf "%s" "${TOKEN:$i:1}"; done; echo'},
                {"tool": "shell", "cmd": 'printf "%s" "$TOKEN" | base64', "env": tok},
                {"tool": "shell", "cmd": 'printf "%s" "$KEY"; printf "%s" "$KEY" | sed "s/$/\\r/"; echo "user=$KUSER"',
                 "env": {"KEY": "#{secrets.deploy.key}", "KUSER": "#{secrets.deploy.username}"}},
                {"tool": "shell", "cmd": "echo piped=$P", "env": {"P": "#{secrets.piped}"}},
            ],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

// requireNoSecret requires that out holds none of the values, nor a line of
// a multi-line value.
func requireNoSecret(t *testing.T, what, out string, values ...string) {
	t.Helper()
	for _, v := range values {
		require.NotContains(t, out, v, "%s leaks a secret", what)
		for _, line := range strings.Split(v, "\n") {
			if len(line) > 20 && !strings.HasPrefix(line, "-----") {
				require.NotContains(t, out, line, "%s leaks a line of a secret", what)
			}
		}
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.ok("project", "create", "vault")
	c.ok("branch", "create", "vault/main")

	const token = "e2e-T0ken-8c1f5a9d"
	const piped = "piped-Value-42abc"
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	blk, err := ssh.MarshalPrivateKey(priv, "e2e")
	require.NoError(t, err)
	key := string(pem.EncodeToMemory(blk))
	secrets := []string{token, piped, key, base64.StdEncoding.EncodeToString([]byte(token))}

	// From a file (one trailing newline dropped), from stdin, and an SSH key.
	c.ok("secret", "create", "vault", "token", "--from-file", writeFile(t, "token.txt", token+"\n"))
	r := c.kkIn(piped+"\n", "secret", "create", "vault", "piped")
	require.Equal(t, 0, r.code, r.stderr)
	requireNoSecret(t, "kk secret create", r.stdout+r.stderr, secrets...)
	c.ok("secret", "create", "vault", "deploy", "--kind", "ssh-key", "--username", "gitbot", "--from-file", writeFile(t, "id_ed25519", key))
	// A second create of the same name is refused and changes nothing.
	r = c.kkIn("other-value\n", "secret", "create", "vault", "token")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "--force")

	var list []map[string]any
	out := c.ok("secret", "list", "vault", "-o", "json")
	requireNoSecret(t, "kk secret list", out, secrets...)
	c.okJSON(&list, "secret", "list", "vault")
	require.Len(t, list, 3)
	for _, s := range list {
		require.Contains(t, s, "id")
		require.Contains(t, s, "name")
	}

	c.ok("stage", "apply", "vault/main", writeFile(t, "leaky.py", secretsStage))
	c.startAgent("vault-agent")
	waitFor(t, 20*time.Second, "agent to be discovered", func() bool {
		return findAgent(c.agents(true), "vault-agent") != nil
	})
	c.ok("agent", "authorize", "vault-agent")
	r = c.kk("flow", "run", "vault/main", "--wait", "-o", "json")
	require.Equal(t, 0, r.code, "flow run --wait: %s%s", r.stderr, r.stdout)
	requireNoSecret(t, "kk flow run", r.stdout, secrets...)

	var flows []flowJSON
	c.okJSON(&flows, "flow", "list", "vault/main")
	require.Len(t, flows, 1)
	f := c.flow(flows[0].ID)
	jobID := strconv.FormatInt(f.Runs[0].Jobs[0].ID, 10)

	logs := c.ok("job", "logs", jobID)
	requireNoSecret(t, "kk job logs", logs, secrets...)
	require.Contains(t, logs, "raw=***\n")
	require.Contains(t, logs, "piped=***\n")
	require.Contains(t, logs, "user=gitbot\n", "a username is not secret")
	step1 := c.ok("job", "logs", jobID, "--step", "1")
	require.Equal(t, "***\n", step1, "a secret printed one character at a time")
	step2 := c.ok("job", "logs", jobID, "--step", "2")
	require.Equal(t, "***\n", step2, "a base64-encoded secret")
	step3 := c.ok("job", "logs", jobID, "--step", "3")
	require.Contains(t, step3, "***")
	require.NotContains(t, step3, "PRIVATE KEY-----\n"+strings.Split(key, "\n")[1], "the key's body is redacted")

	for _, args := range [][]string{
		{"job", "show", jobID, "-o", "json"},
		{"flow", "show", strconv.FormatInt(f.ID, 10), "-o", "json"},
		{"secret", "list", "vault", "-o", "json"},
	} {
		requireNoSecret(t, "kk "+strings.Join(args, " "), c.ok(args...), secrets...)
	}
	// The job shows the references it used.
	require.Contains(t, c.ok("job", "show", jobID, "-o", "json"), "#{secrets.token}")

	// Deleting a secret a stage uses fails the next job with a clear message.
	c.ok("secret", "delete", "vault", "piped")
	r = c.kk("flow", "run", "vault/main", "--wait", "-o", "json")
	require.Equal(t, 1, r.code, "a job using a deleted secret must fail: %s", r.stdout)
	var failed flowJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &failed))
	fj := failed.Runs[0].Jobs[0]
	require.Equal(t, "error", fj.Result)
	var shown map[string]any
	c.okJSON(&shown, "job", "show", strconv.FormatInt(fj.ID, 10))
	require.Contains(t, shown["message"], "kk secret create vault piped")
}
