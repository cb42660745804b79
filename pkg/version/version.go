// Package version reports the build's version: set at link time with
// -ldflags "-X github.com/kraken-go/kk/pkg/version.Version=v1.2.3" (make build
// does), else taken from the module build info: the module version, or
// devel-REVISION for a development build.
package version

import "runtime/debug"

// Version is set by the linker for release builds.
var Version = ""

// String returns the version of this build.
func String() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		return "devel-" + rev + dirty
	}
	return "devel"
}
