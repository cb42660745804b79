// Package dockertest gives tests what they need to run jobs on this host's
// real Docker engine: a client (the tests fail in CI, and skip elsewhere, when
// the engine does not answer), a busybox-only test image built locally from
// the host's /bin/busybox (no registry is needed) and a static kkagent binary
// to bind-mount into job containers.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Image is the tag of the test image: FROM scratch, /bin/busybox with its
// applets as symlinks, /etc/passwd with root and builder (uid 1000) and an
// /etc/os-release naming it.
const Image = "kk-test-busybox:latest"

// OSReleaseName is the PRETTY_NAME of the test image's /etc/os-release.
const OSReleaseName = "kk test busybox"

const busybox = "/bin/busybox"

// unavailable fails the test in CI (CI set) and skips it elsewhere.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI: docker tests must run; `make test` runs scripts/test-deps.sh to set them up)", msg)
	}
	t.Skipf("%s; skipped outside CI", msg)
}

// Client returns a client of the local engine, or ends the test when the
// engine does not answer.
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		unavailable(t, "docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		unavailable(t, "the Docker engine does not answer (start dockerd, or set DOCKER_HOST): %v", err)
	}
	return cli
}

var (
	imageOnce sync.Once
	imageErr  error
)

// BusyboxImage builds Image (once per test process) and returns its tag.
func BusyboxImage(t testing.TB, cli *client.Client) string {
	t.Helper()
	if _, err := os.Stat(busybox); err != nil {
		unavailable(t, "%s is missing: install Debian's busybox-static (scripts/test-deps.sh does)", busybox)
	}
	if f, err := elf.Open(busybox); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				unavailable(t, "%s is dynamically linked: install Debian's busybox-static instead of busybox", busybox)
			}
		}
		f.Close()
	}
	imageOnce.Do(func() { imageErr = buildImage(cli) })
	if imageErr != nil {
		t.Fatalf("build test image %s: %v", Image, imageErr)
	}
	return Image
}

func buildImage(cli *client.Client) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode})
	}
	file := func(name string, mode int64, data []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))})
		_, _ = tw.Write(data)
	}
	for _, d := range []string{"bin", "etc", "root", "home", "home/builder", "proc", "sys", "dev"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	file("bin/busybox", 0o755, bin)
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777})
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000:builder:/home/builder:/bin/sh\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nbuilder:x:1000:\n"))
	file("etc/os-release", 0o644, []byte("ID=kk-busybox\nPRETTY_NAME=\""+OSReleaseName+"\"\n"))
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, Image, image.ImportOptions{
		Changes: []string{"ENV PATH=/bin", `CMD ["/bin/sh"]`},
	})
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if bytes.Contains(out, []byte(`"error"`)) {
		return fmt.Errorf("import: %s", out)
	}
	return nil
}

var (
	agentOnce sync.Once
	agentDir  string
	agentPath string
	agentErr  error
)

// Cleanup removes what AgentBinary built; call it from TestMain after m.Run.
func Cleanup() {
	if agentDir != "" {
		_ = os.RemoveAll(agentDir)
	}
}

// AgentBinary builds a static kkagent (once per test process) into a
// temporary directory and returns its path.
func AgentBinary(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() {
		agentDir, agentErr = os.MkdirTemp("", "kk-dockertest-")
		if agentErr != nil {
			return
		}
		var root []byte
		root, agentErr = exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
		if agentErr != nil {
			return
		}
		agentPath = filepath.Join(agentDir, "kkagent")
		cmd := exec.Command("go", "build", "-o", agentPath, "./cmd/kkagent")
		cmd.Dir = strings.TrimSpace(string(root))
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = fmt.Errorf("go build kkagent: %v\n%s", err, out)
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentPath
}
