package cli

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// readBuildInfo is debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

func newCmdVersion(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print keyhold's version and the commit it was built from",
		Long: `Print keyhold's module version, the VCS commit and time it was built from
(with "+dirty" for uncommitted changes), and the Go version. A binary built
with "go build" inside the repository carries the commit; "go run" and test
binaries may carry none.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(f.IO.Out, versionText())
			return err
		},
	}
}

// versionText renders the build information of the running binary:
// "keyhold <version> (<commit>[+dirty], <time>) <go version>".
func versionText() string {
	bi, ok := readBuildInfo()
	if !ok {
		return "keyhold (unknown version: built without module support)"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	var parts []string
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "+dirty"
		}
		parts = append(parts, rev)
	}
	if at != "" {
		parts = append(parts, at)
	}
	s := "keyhold " + version
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s + " " + bi.GoVersion
}
