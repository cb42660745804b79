package docker_test

import (
	"os"
	"testing"

	"github.com/kraken-go/kk/pkg/executor/docker/dockertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dockertest.Cleanup()
	os.Exit(code)
}

func writeFile(name, data string) error { return os.WriteFile(name, []byte(data), 0o644) }
