package agent

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
