package agentinstall

import (
	"bytes"
	"strings"
	"text/template"
)

// The unit and the env file. Plan renders them with an install's values;
// Script renders them with shell variables in place of the values, inside
// here-documents, so both installers write the same bytes.
var (
	unitTemplate = template.Must(template.New("unit").Parse(`# {{.Marker}}: re-running it rewrites this file, kk agent uninstall removes it.
[Unit]
Description=Kraken in Go build agent (kkagent)
Documentation=https://github.com/kraken-go/kk
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={{.User}}
# KRAKEN_SERVER_ADDR, KKAGENT_DATA_DIR and KKAGENT_REGISTRATION_KEY; the file is
# readable by root only, as it holds the key.
EnvironmentFile={{.EnvFile}}
# kkagent run is the supervisor: it restarts its worker after a crash or a
# self-upgrade (which replaces the binary in its directory, owned by the user).
ExecStart={{.Binary}} run{{.RunFlags}}
# SIGTERM goes to the supervisor, which stops the worker and the running step's
# process group; whatever is left after TimeoutStopSec gets SIGKILL.
KillMode=mixed
TimeoutStopSec=60
Restart=always
RestartSec=5
# Builds open many files.
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`))

	envTemplate = template.Must(template.New("env").Parse(`# Environment of kkagent, read by systemd (EnvironmentFile= of {{.Unit}}).
# {{.Marker}}: re-running it rewrites this file.
KRAKEN_SERVER_ADDR={{.Server}}
KKAGENT_DATA_DIR={{.DataDir}}
# Enrols the agent without kk agent authorize when it matches kkd's
# KKD_AGENT_REGISTRATION_KEY; empty: authorize the agent by hand.
KKAGENT_REGISTRATION_KEY={{.RegistrationKey}}
`))
)

// values fill the templates. The installer's constants are set by render.
type values struct {
	Server, DataDir, RegistrationKey, User, RunFlags string

	Marker, Unit, EnvFile, Binary string
}

func render(t *template.Template, v values) []byte {
	v.Marker, v.Unit, v.EnvFile, v.Binary = Marker, UnitName, EnvFilePath, BinaryPath
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		panic("agentinstall: template " + t.Name() + ": " + err.Error()) // the templates are constant
	}
	return b.Bytes()
}

// shellValues stand for the shell variables of the install script.
var shellValues = values{
	Server:          "${server}",
	DataDir:         "${data_dir}",
	RegistrationKey: "${registration_key}",
	User:            "${user}",
	RunFlags:        "${run_flags}",
}

// renderHeredoc renders t as the body of an unquoted here-document whose
// expansion yields what render gives for the script's variables: the
// template's text is escaped, the values become shell expansions.
func renderHeredoc(t *template.Template) string {
	// Render with sentinels that survive escaping, then put the
	// expansions in.
	var sentinels values
	var repl []string
	for _, f := range []struct {
		dst   *string
		shell string
	}{
		{&sentinels.Server, shellValues.Server},
		{&sentinels.DataDir, shellValues.DataDir},
		{&sentinels.RegistrationKey, shellValues.RegistrationKey},
		{&sentinels.User, shellValues.User},
		{&sentinels.RunFlags, shellValues.RunFlags},
	} {
		*f.dst = "@@" + strings.Trim(f.shell, "${}") + "@@"
		repl = append(repl, *f.dst, f.shell)
	}
	text := heredocEscaper.Replace(string(render(t, sentinels)))
	return strings.NewReplacer(repl...).Replace(text)
}

// heredocEscaper quotes the characters an unquoted here-document expands.
var heredocEscaper = strings.NewReplacer(`\`, `\\`, "$", `\$`, "`", "\\`")
