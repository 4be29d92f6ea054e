package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is what the binary knows of its own build, from the
// information the Go toolchain stamps into every binary: no flags to
// pass at build time, and no chance to forget them.
type buildVersion struct {
	Version string `json:"version"` // of the main module: a tag, a pseudo-version or (devel)
	Commit  string `json:"commit"`  // vcs.revision, with -dirty if the tree had changes; "unknown" without VCS info
	Go      string `json:"go"`      // the toolchain that built it
}

func readBuildVersion() buildVersion {
	v := buildVersion{Version: "unknown", Commit: "unknown", Go: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version, v.Go = info.Main.Version, info.GoVersion
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && v.Commit != "unknown" {
		v.Commit += "-dirty"
	}
	return v
}

func (v buildVersion) String() string {
	return fmt.Sprintf("conveyor %s\ncommit %s\n%s", v.Version, v.Commit, v.Go)
}

// versionCmd prints the build's version, as --version does.
func versionCmd() *cobra.Command {
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := readBuildVersion()
			if output.json() {
				return printJSON(os.Stdout, v)
			}
			_, err := fmt.Println(v)
			return err
		},
	}
	output = addOutputFlag(cmd)
	return cmd
}
