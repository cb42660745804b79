package agentinstall

import (
	"net/http"
	"strings"
	"text/template"
)

// Script returns the install script kkd serves at ScriptPath: a POSIX sh
// program doing what InstallPlan and Apply do, for hosts without kk. The
// unit and the env file come from the same templates as InstallPlan's, so
// the two installers write the same bytes. serverURL is the default of
// KRAKEN_SERVER_ADDR; when it is not a usable URL the script requires
// KRAKEN_SERVER_ADDR.
func Script(serverURL string) string {
	serverURL = strings.TrimRight(strings.TrimSpace(serverURL), "/")
	d := scriptData{
		ServerHint:     "SERVER",
		DefaultDataDir: DefaultDataDir,
		DefaultUser:    DefaultUser,
		DockerGroup:    DockerGroup,
		InstallDir:     InstallDir,
		ConfigDir:      ConfigDir,
		BinaryPath:     BinaryPath,
		EnvFilePath:    EnvFilePath,
		UnitPath:       UnitPath,
		UnitName:       UnitName,
		Marker:         Marker,
		BinaryURLPath:  BinaryURLPath,
		SHA256Path:     BinarySHA256Path,
		ScriptPath:     ScriptPath,
		DeniedDataDirs: deniedDataDirPatterns(),
		EnvFile:        renderHeredoc(envTemplate),
		Unit:           renderHeredoc(unitTemplate),
	}
	d.DefaultServer = "''"
	if validateServer(serverURL) == nil {
		d.DefaultServer, d.ServerHint = ShellQuote(serverURL), serverURL
	}
	var b strings.Builder
	if err := scriptTemplate.Execute(&b, d); err != nil {
		panic("agentinstall: script template: " + err.Error()) // the template is constant
	}
	return b.String()
}

type scriptData struct {
	DefaultServer, ServerHint                                string
	DefaultDataDir, DefaultUser, DockerGroup                 string
	InstallDir, ConfigDir, BinaryPath, EnvFilePath, UnitPath string
	UnitName, Marker, BinaryURLPath, SHA256Path, ScriptPath  string
	DeniedDataDirs                                           string
	EnvFile, Unit                                            string
}

// deniedDataDirPatterns is ValidateDataDir's list of system directories as
// a case pattern.
func deniedDataDirPatterns() string {
	p := append([]string(nil), deniedDirs...)
	for _, t := range deniedTrees {
		p = append(p, t, t+"/*")
	}
	return strings.Join(p, "|")
}

// ScriptHandler serves Script as text/x-shellscript for GET and HEAD.
// serverURL gives the URL of kkd that agents should use for a request;
// nil means RequestServerURL.
func ScriptHandler(serverURL func(*http.Request) string) http.Handler {
	if serverURL == nil {
		serverURL = RequestServerURL
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/x-shellscript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write([]byte(Script(serverURL(r))))
	})
}

// RequestServerURL is the URL a request reached kkd at: its scheme (https
// with TLS) and Host header. Behind a proxy, configure the URL instead.
func RequestServerURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

var scriptTemplate = template.Must(template.New("script").Parse(`#!/bin/sh
# kraken-agent-install.sh: installs kkagent, the Kraken in Go build agent, as a
# systemd service. It does what "kk agent install" does and writes the same
# files: both are generated from the same templates (pkg/agentinstall).
#
#   curl -fsSL {{.ServerHint}}{{.ScriptPath}} | sudo KKAGENT_REGISTRATION_KEY=KEY KKAGENT_GROUPS=linux sh
#
# Settings, from the environment:
#   KRAKEN_SERVER_ADDR        kkd URL the agent connects to (default {{.ServerHint}})
#   KKAGENT_REGISTRATION_KEY  enrols the agent without kk agent authorize
#   KKAGENT_GROUPS            groups to join with the key, comma-separated
#   KKAGENT_NAME              agent name (default: the host name)
#   KKAGENT_DATA_DIR          data dir (default {{.DefaultDataDir}})
#   KKAGENT_USER              user the agent runs as (default {{.DefaultUser}})
#   KKAGENT_UNIX_GROUPS       the user's extra unix groups, comma-separated
#                             (default: {{.DockerGroup}} when that group exists)
#   KKAGENT_FORCE=1           overwrite a {{.UnitName}} this installer did not write
#   DESTDIR                   write the files under this directory (staging, tests);
#                             skips the root and systemd checks, commands still run
#
# Files: {{.BinaryPath}} (the agent's directory is owned by its user, so that it
# can upgrade itself), {{.EnvFilePath}} (0600: it holds the key), {{.UnitPath}}.
set -eu
set -f
LC_ALL=C
export LC_ALL
umask 022

say() { printf 'kraken-agent-install: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

default_server={{.DefaultServer}}
server=${KRAKEN_SERVER_ADDR:-$default_server}
while :; do case $server in */) server=${server%/} ;; *) break ;; esac; done
data_dir=${KKAGENT_DATA_DIR:-{{.DefaultDataDir}}}
user=${KKAGENT_USER:-{{.DefaultUser}}}
registration_key=${KKAGENT_REGISTRATION_KEY:-}
name=${KKAGENT_NAME:-}
destdir=${DESTDIR:-}
while :; do case $destdir in */) destdir=${destdir%/} ;; *) break ;; esac; done

# Values go unquoted into the env file and the unit: the same rules as kk's.
check_value() {
	case $2 in *[!]A-Za-z0-9[_.~:/@+,=%-]*) die "$1: use letters, digits and the characters ._~:/[]@+,=%- (no spaces or quotes)" ;; esac
}
check_unix_name() {
	case $2 in ''|[!a-z_]*|*[!a-z0-9_-]*) die "$1 \"$2\": use a unix name (lower case letters, digits, '_' and '-')" ;; esac
	[ ${#2} -le 32 ] || die "$1 \"$2\": at most 32 characters"
}
check_name() {
	case $2 in ''|[!A-Za-z0-9]*|*[!A-Za-z0-9._-]*) die "$1 \"$2\": use letters, digits, '.', '_' and '-', starting with a letter or digit" ;; esac
	[ ${#2} -le "$3" ] || die "$1 \"$2\": at most $3 characters"
}

[ -n "$server" ] || die "no server: set KRAKEN_SERVER_ADDR to the kkd URL agents connect to"
check_value "server $server" "$server"
case $server in http://?*|https://?*) ;; *) die "server \"$server\": want an http:// or https:// URL" ;; esac
authority=${server#*://}
authority=${authority%%/*}
case $authority in ''|*@*) die "server \"$server\": want a URL with a host and no user" ;; esac
check_value "registration key" "$registration_key"
[ ${#registration_key} -le 512 ] || die "registration key: at most 512 characters"
check_unix_name user "$user"

bad_data_dir() { die "data dir \"$data_dir\": $1; use a directory of its own such as {{.DefaultDataDir}}"; }
case $data_dir in
	''|[!/]*|*[!A-Za-z0-9._/-]*) bad_data_dir "want an absolute path of letters, digits, '.', '_', '-' and '/'" ;;
	*//*|*/./*|*/../*|*/.|*/..|*/) bad_data_dir "not a clean path" ;;
	{{.DeniedDataDirs}}) bad_data_dir "a system directory" ;;
	/*/*) ;;
	*) bad_data_dir "a system directory" ;;
esac

# Flags of kkagent run without an environment variable: groups and name.
run_flags=
old_ifs=$IFS
IFS=', '
for g in ${KKAGENT_GROUPS:-}; do
	check_name group "$g" 100
	run_flags="$run_flags --group $g"
done
if [ "${KKAGENT_UNIX_GROUPS+set}" = set ]; then
	unix_groups=
	for g in $KKAGENT_UNIX_GROUPS; do
		check_unix_name "unix group" "$g"
		unix_groups=${unix_groups:+$unix_groups,}$g
	done
elif grep -q '^{{.DockerGroup}}:' "$destdir/etc/group" 2>/dev/null; then
	unix_groups={{.DockerGroup}}
else
	unix_groups=
fi
IFS=$old_ifs
if [ -n "$name" ]; then
	check_name "agent name" "$name" 64
	run_flags="$run_flags --name $name"
fi

case $(uname -m) in
	x86_64|amd64) arch=amd64 ;;
	aarch64|arm64) arch=arm64 ;;
	*) die "kkd serves kkagent for amd64 and arm64, not $(uname -m)" ;;
esac

if [ -z "$destdir" ]; then
	[ "$(id -u)" = 0 ] || die "installing an agent changes the system: run as root, e.g. curl -fsSL {{.ServerHint}}{{.ScriptPath}} | sudo sh"
	[ -d /run/systemd/system ] || die "systemd is not running on this host (no /run/systemd/system): run kkagent in Docker (kk agent install --docker) or under your own supervisor"
fi
unit=$destdir{{.UnitPath}}
if [ -e "$unit" ] && ! grep -qF '{{.Marker}}' "$unit" && [ -z "${KKAGENT_FORCE:-}" ]; then
	die "$unit exists and was not written by kk agent install: remove it, or set KKAGENT_FORCE=1 to overwrite it"
fi

# Download and verify the binary before changing anything.
fetch() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1"
	else
		die "need curl or wget to download kkagent"
	fi
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kkagent-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
query="os=linux&arch=$arch"
fetch "$server{{.SHA256Path}}?$query" "$tmp/sha256" || die "cannot download $server{{.SHA256Path}}?$query"
fetch "$server{{.BinaryURLPath}}?$query" "$tmp/kkagent" || die "cannot download $server{{.BinaryURLPath}}?$query"
want=$(awk '{ print tolower($1); exit }' "$tmp/sha256")
case $want in *[!0-9a-f]*|'') die "$server{{.SHA256Path}}?$query did not answer a hex SHA-256 digest" ;; esac
[ ${#want} -eq 64 ] || die "$server{{.SHA256Path}}?$query did not answer a hex SHA-256 digest"
got=$(sha256sum "$tmp/kkagent" | awk '{ print $1 }')
[ "$got" = "$want" ] || die "kkagent has SHA-256 $got, but the server says $want: nothing was installed; retry, and if it persists check the binaries kkd serves"

id -u "$user" >/dev/null 2>&1 || useradd --system --user-group --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin "$user"
if [ -n "$unix_groups" ]; then
	usermod --append --groups "$unix_groups" "$user"
fi

mkdir -p "$destdir{{.InstallDir}}" && chmod 0755 "$destdir{{.InstallDir}}"
mkdir -p "$destdir{{.ConfigDir}}" && chmod 0755 "$destdir{{.ConfigDir}}"
mkdir -p "$destdir$data_dir" && chmod 0750 "$destdir$data_dir"

# write_file PATH MODE: stdin to PATH, atomically, never readable by others
# on the way.
write_file() {
	mkdir -p "$(dirname "$1")"
	(umask 077 && cat >"$1.tmp.$$")
	chmod "$2" "$1.tmp.$$"
	mv -f "$1.tmp.$$" "$1"
}
write_file "$destdir{{.BinaryPath}}" 0755 <"$tmp/kkagent"
write_file "$destdir{{.EnvFilePath}}" 0600 <<KKAGENT_INSTALL_EOF
{{.EnvFile}}KKAGENT_INSTALL_EOF
write_file "$destdir{{.UnitPath}}" 0644 <<KKAGENT_INSTALL_EOF
{{.Unit}}KKAGENT_INSTALL_EOF

chown "$user:" "$destdir{{.InstallDir}}" "$destdir$data_dir" "$destdir{{.BinaryPath}}"
systemctl daemon-reload
systemctl try-restart {{.UnitName}}
systemctl enable --now {{.UnitName}}

say "kkagent is installed and running: systemctl status {{.UnitName}}; logs: journalctl -u {{.UnitName}} -f"
if [ -z "$registration_key" ]; then
	say "it shows up as discovered: authorize it with kk agent authorize NAME (see kk agent list --discovered)"
fi
`))
