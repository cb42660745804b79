package agent

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
)

// probeHost describes the host. root is the host's file system (os.DirFS("/")
// in production) so tests can feed fixtures. Docker and LXD come from the
// agent's executors (executorVersions).
func probeHost(root fs.FS, hostname, version string) ci.HostInfo {
	h := ci.HostInfo{
		OS:           runtime.GOOS,
		Arch:         runtime.GOARCH,
		CPUs:         runtime.NumCPU(),
		Hostname:     hostname,
		Isolation:    isolation(root),
		AgentVersion: version,
		System:       runtime.GOOS,
	}
	if rel, err := fs.ReadFile(root, "etc/os-release"); err == nil {
		kv := parseOSRelease(rel)
		h.Distro = kv["ID"]
		h.DistroVersion = kv["VERSION_ID"]
		switch {
		case h.Distro != "" && h.DistroVersion != "":
			h.System = h.Distro + "-" + h.DistroVersion
		case h.Distro != "":
			h.System = h.Distro
		}
	}
	if mi, err := fs.ReadFile(root, "proc/meminfo"); err == nil {
		h.MemoryMiB = memTotalMiB(mi)
	}
	return h
}

// parseOSRelease parses os-release(5): KEY=value lines, values optionally quoted.
func parseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		out[k] = v
	}
	return out
}

// memTotalMiB reads MemTotal (in kB) from /proc/meminfo.
func memTotalMiB(data []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}

// isolation is "container" inside Docker, containerd or LXC, else "bare-metal".
func isolation(root fs.FS) string {
	if _, err := fs.Stat(root, ".dockerenv"); err == nil {
		return "container"
	}
	if cg, err := fs.ReadFile(root, "proc/1/cgroup"); err == nil {
		s := string(cg)
		for _, k := range []string{"docker", "containerd", "lxc", "kubepods"} {
			if strings.Contains(s, k) {
				return "container"
			}
		}
	}
	return "bare-metal"
}

// hostname returns the host's name, or "kkagent" when it cannot be read.
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "kkagent"
	}
	return h
}

// executorVersions returns the engine versions of the agent's docker and lxd
// executors, each empty unless that executor is configured and its engine
// answers now: the scheduler gives docker/lxd jobs only to agents reporting
// them.
func executorVersions(exs map[string]executor.Executor) (docker, lxd string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	version := func(name string) string {
		ex, ok := exs[name]
		if !ok {
			return ""
		}
		caps := ex.Capabilities(ctx)
		if !caps.Available {
			return ""
		}
		if caps.Version == "" {
			return "unknown"
		}
		return caps.Version
	}
	return version(ci.ExecutorDocker), version(ci.ExecutorLXD)
}
