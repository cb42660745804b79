// Package version reports the build's version: set at link time with
// -ldflags "-X github.com/kraken-go/kk/pkg/version.Version=v1.2.3", else taken
// from the module build info.
package version

import "runtime/debug"

// Version is set by the linker for release builds.
var Version = ""

// String returns the version of this build.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
