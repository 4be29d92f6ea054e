// Command conveyor runs pipelines in the background and serves their
// progress over REST and WebSocket.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "conveyor",
		Short:         "Run pipelines in the background and watch their progress live",
		Version:       readBuildVersion().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(serveCmd(benchPipelines))
	root.AddCommand(migrateCmd())
	root.AddCommand(clientCmds()...)
	root.AddCommand(benchCmd())
	root.AddCommand(versionCmd())
	if err := root.Execute(); err != nil {
		var status exitStatus
		if errors.As(err, &status) {
			os.Exit(int(status))
		}
		fmt.Fprintln(os.Stderr, "conveyor:", err)
		os.Exit(1)
	}
}
