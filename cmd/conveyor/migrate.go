package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/conveyor-run/conveyor/store/postgres"
)

func migrateCmd() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded schema migrations to a PostgreSQL database (serve does this too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := envDefaults(cmd.Flags()); err != nil {
				return err
			}
			if url == "" {
				return errors.New("--database-url (or CONVEYOR_DATABASE_URL) is required")
			}
			applied, version, err := postgres.Migrate(context.Background(), url)
			if err != nil {
				return err
			}
			printMigrated(cmd.OutOrStdout(), applied, version)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "database-url", "", "PostgreSQL URL [CONVEYOR_DATABASE_URL]")
	return cmd
}

// printMigrated says what migrate did, so an operator upgrading sees
// which schema changes ran, or that none had to.
func printMigrated(w io.Writer, applied []string, version int) {
	if len(applied) == 0 {
		fmt.Fprintf(w, "up to date at version %d\n", version)
		return
	}
	names := make([]string, len(applied))
	for i, name := range applied {
		names[i] = strings.TrimSuffix(name, ".sql")
	}
	fmt.Fprintf(w, "applied %s: now at version %d\n", strings.Join(names, ", "), version)
}
