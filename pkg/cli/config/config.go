// Package config reads and writes kk's configuration file: the server kk talks
// to and the API token `kk login` obtained for it.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// EnvPath names the environment variable that overrides the config file path.
const EnvPath = "KK_CONFIG"

// Config is the content of the config file.
type Config struct {
	// Server is the base URL of kkd, e.g. http://127.0.0.1:6363.
	Server string `yaml:"server,omitempty"`
	// Token is an API token for Server. It is only sent to Server.
	Token string `yaml:"token,omitempty"`
}

// Path returns the config file path: $KK_CONFIG, else ~/.config/kk/config.yaml.
func Path(getenv func(string) string, home func() (string, error)) (string, error) {
	if p := getenv(EnvPath); p != "" {
		return p, nil
	}
	h, err := home()
	if err != nil {
		return "", fmt.Errorf("locate the config file: %w (set %s to its path)", err, EnvPath)
	}
	return filepath.Join(h, ".config", "kk", "config.yaml"), nil
}

// Load reads the config file. A missing file is an empty config.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var c Config
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse config %s: %w (fix or remove the file, then run `kk login`)", path, err)
	}
	return &c, nil
}

// Save writes the config file with mode 0600 (it holds a token), creating its
// directory with mode 0700. The file is replaced atomically.
func Save(path string, c *Config) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}
